#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers (see FUZZING.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all of them, one after the other) for SECONDS (default
# 60) or FUZZ_RUNS executions (default 10,000,000), whichever comes first, under
# nice 19, with libFuzzer's hang timeout of 10 s and an RSS limit of 2 GiB. Installs
# cargo-fuzz when it is missing. The working corpus (fuzz/corpus/TARGET, not kept in
# git) starts from tests/fuzz-regressions/TARGET; a crash or hang is written to
# fuzz/artifacts/TARGET/ and makes the script fail: copy it into
# tests/fuzz-regressions/TARGET/ so `cargo test` replays it once fixed.
#
# No nightly toolchain is needed: RUSTC_BOOTSTRAP=1 lets stable rustc take the
# sanitizer flags. FUZZ_SANITIZER=none (default: address) runs without AddressSanitizer.
set -euo pipefail

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dns_wire dns_hickory manifest probe_body)
runs=${FUZZ_RUNS:-10000000}
sanitizer=${FUZZ_SANITIZER:-address}

cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

status=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    cp -n tests/fuzz-regressions/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
    echo "== $target: ${seconds} s or ${runs} runs" >&2
    set +e
    nice -n 19 cargo fuzz run -s "$sanitizer" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -runs="$runs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"fuzz/artifacts/$target.log" 2>&1
    rc=$?
    set -e
    grep -E '^(stat::|==[0-9]+==|Done )|deadly|timeout|out-of-memory' "fuzz/artifacts/$target.log" >&2 || true
    if [ "$rc" -ne 0 ] || ls "fuzz/artifacts/$target"/* >/dev/null 2>&1; then
        echo "== $target: FAILED (see fuzz/artifacts/$target.log and fuzz/artifacts/$target/)" >&2
        status=1
    fi
done
exit $status
