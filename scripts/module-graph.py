#!/usr/bin/env python3
"""Import graph of the crate's top-level modules (`use crate::x` and `crate::x::` paths,
tests excluded): prints each module's dependencies and any cycle, and checks that the
query path (the engine and everything it and the DNS server stand on) never imports
the resource kinds: they take the domain's words from `terms`. Exit 1 on a cycle or
such an import.

Usage: scripts/module-graph.py [--check]
"""
import glob
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


# The engine and the layers below it on the query path: none of them reads `resources`.
QUERY_PATH = ("engine", "health", "snapshot", "codec", "names", "terms", "dns", "metrics")


def module_of(path):
    rel = os.path.relpath(path, SRC)
    top = rel.split(os.sep)[0]
    return top[:-3] if top.endswith(".rs") else top


def main():
    deps = {}
    for path in glob.glob(os.path.join(SRC, "**", "*.rs"), recursive=True):
        mod = module_of(path)
        if mod in ("lib", "main"):
            continue
        text = open(path).read()
        text = text.split("#[cfg(test)]")[0]
        code = "\n".join(line.split("//")[0] for line in text.splitlines())
        used = set(re.findall(r"crate::(\w+)", code))
        deps.setdefault(mod, set()).update(u for u in used if u != mod)
    cycles = []
    def visit(node, stack, seen):
        for d in sorted(deps.get(node, ())):
            if d in stack:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in seen:
                seen.add(d)
                visit(d, stack + [d], seen)
    for m in sorted(deps):
        visit(m, [m], {m})
    for m in sorted(deps):
        print(f"{m:12} -> {', '.join(sorted(deps[m])) or '-'}")
    unique = {tuple(sorted(set(c))) for c in cycles}
    for c in sorted(unique):
        print("cycle:", " <-> ".join(c))
    reaching_up = [m for m in QUERY_PATH if "resources" in deps.get(m, ())]
    for m in reaching_up:
        print(f"{m} imports resources: the query path takes the domain's words from terms")
    if "--check" in sys.argv and (unique or reaching_up):
        sys.exit(1)


if __name__ == "__main__":
    main()
