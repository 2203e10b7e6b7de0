#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz-regressions/<target>/
(seed-* files; inputs that once crashed a target are kept there as crash-*).
The format of each target's input is described in fuzz/harness.rs."""

import gzip
import os
import shutil
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fuzz-regressions")

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33,
         "OPT": 41, "AXFR": 252, "IXFR": 251, "ANY": 255, "CAA": 257}


def name(n: str) -> bytes:
    out = b""
    for label in n.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qname, qtype="A", qclass=1, ident=0x1234, flags=0x0100, edns=None, version=0,
          do=False, qd=1, an=0, ns=0, extra=b"", options=b""):
    t = TYPES[qtype] if isinstance(qtype, str) else qtype
    ar = 1 if edns is not None else 0
    msg = struct.pack(">HHHHHH", ident, flags, qd, an, ns, ar)
    msg += name(qname) + struct.pack(">HH", t, qclass)
    if edns is not None:
        ttl = (version << 16) | (0x8000 if do else 0)
        msg += b"\0" + struct.pack(">HHIH", 41, edns, ttl, len(options)) + options
    return msg + extra


def frame(msg: bytes) -> bytes:
    return struct.pack(">H", len(msg)) + msg


def dns_queries():
    q = {}
    for n, t in [("www.example.test", "A"), ("WwW.ExAmPlE.TeSt", "A"), ("www.example.test", "AAAA"),
                 ("example.test", "MX"), ("example.test", "SOA"), ("example.test", "NS"),
                 ("_sip._tcp.example.test", "SRV"), ("txt.example.test", "TXT"), ("app.example.test", "A"),
                 ("chain.example.test", "A"), ("cross.example.test", "A"), ("out.example.test", "A"),
                 ("dangling.example.test", "A"), ("b.example.test", "A"), ("a.b.example.test", "A"),
                 ("lb.example.test", "A"), ("fo.example.test", "A"), ("nothing.example.test", "A"),
                 ("www.example.test", "CAA"), ("elsewhere.invalid", "A"), ("www.example.test", "ANY"),
                 ("example.test", "AXFR"), ("example.test", "IXFR"), ("www.example.test", "OPT"),
                 ("big.example.test", "TXT"), ("huge.example.test", "A")]:
        q[f"{n}-{t}".lower()] = query(n, t)
    q["big-txt-edns4096"] = query("big.example.test", "TXT", edns=4096)
    q["huge-edns1232-do"] = query("huge.example.test", "A", edns=1232, do=True)
    q["edns-version1"] = query("www.example.test", "A", edns=1232, version=1)
    q["edns-option"] = query("www.example.test", "A", edns=1232, options=struct.pack(">HH", 10, 8) + b"\1" * 8)
    q["edns-bad-option-length"] = query("www.example.test", "A", edns=1232, options=struct.pack(">HH", 10, 200) + b"\1" * 8)
    q["class-chaos"] = query("version.bind", "TXT", qclass=3)
    q["class-any"] = query("www.example.test", "A", qclass=255)
    q["opcode-notify"] = query("example.test", "SOA", flags=0x2000)
    q["opcode-update"] = query("example.test", "SOA", flags=0x2800)
    q["qr-set"] = query("www.example.test", "A", flags=0x8100)
    q["qdcount-2"] = query("www.example.test", "A", qd=2)
    q["qdcount-0"] = struct.pack(">HHHHHH", 7, 0x0100, 0, 0, 0, 0)
    q["ancount-1"] = query("www.example.test", "A", an=1)
    q["trailing"] = query("www.example.test", "A", extra=b"\xde\xad\xbe\xef")
    q["cut-name"] = query("www.example.test", "A")[:20]
    q["compressed-qname"] = struct.pack(">HHHHHH", 9, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\1\0\1"
    q["long-label"] = query("a" * 63 + ".example.test", "A")
    q["cd-rd"] = query("www.example.test", "A", flags=0x0110)
    q["runt"] = b"\x12\x34\x01"
    return q


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    for target in ["dns_wire", "dns_hickory", "manifest", "probe_body"]:
        d = os.path.join(OUT, target)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.startswith("seed-"):
                    os.remove(os.path.join(d, f))
    for target in ["dns_wire", "dns_hickory", "manifest", "probe_body"]:
        os.makedirs(os.path.join(OUT, target), exist_ok=True)
    queries = dns_queries()
    # dns_wire: control byte (bit 0 TCP, bit 1 not ready) + datagram or framed stream.
    for n, q in queries.items():
        write("dns_wire", "udp-" + n, b"\0" + q)
        write("dns_hickory", "udp-" + n, b"\0" + q)
    write("dns_wire", "udp-not-ready", b"\2" + queries["www.example.test-a"])
    write("dns_hickory", "udp-not-ready", b"\2" + queries["www.example.test-a"])
    write("dns_hickory", "tcp-huge", b"\1" + queries["huge.example.test-a"])
    write("dns_wire", "tcp-pipelined", b"\1" + b"".join(frame(queries[k]) for k in
                                                       ["www.example.test-a", "qr-set", "runt", "lb.example.test-a"]))
    write("dns_wire", "tcp-huge", b"\1" + frame(queries["huge.example.test-a"]))
    write("dns_wire", "tcp-big-txt", b"\1" + frame(queries["big.example.test-txt"]) + b"\0")

    # manifest: the examples plus a few small documents.
    examples = os.path.join(ROOT, "examples")
    for f in sorted(os.listdir(examples)):
        if f.endswith(".yaml"):
            shutil.copyfile(os.path.join(examples, f), os.path.join(OUT, "manifest", "seed-example-" + f))
    hdr = "apiVersion: failoverdns.io/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    docs = {
        "http-search": hdr.format(kind="HealthCheck", name="h", spec="{type: HTTPS, fullyQualifiedDomainName: www.example.test, port: 443, resourcePath: /health, searchString: ok, requestInterval: 10s, failureThreshold: 3, timeout: 2s}"),
        "tcp-check": hdr.format(kind="HealthCheck", name="t", spec="{type: TCP, ipAddress: '2001:db8::1', port: 80}"),
        "types": "---\n".join(hdr.format(kind="FailoverRecord", name=f"r{i}", spec=s) for i, s in enumerate([
            "{name: a.example.test, type: AAAA, values: ['2001:db8::2']}",
            "{name: m.example.test, type: MX, values: ['10 mx.example.test.']}",
            "{name: _x._udp.example.test, type: SRV, values: ['0 5 53 ns.example.test.']}",
            "{name: t.example.test, type: TXT, values: ['\"a\" \"b\"']}",
            "{name: c.example.test, type: CNAME, values: [a.example.test]}",
            "{name: w.other.test, type: A, routingPolicy: Weighted, setIdentifier: x, weight: 0, values: [192.0.2.1]}",
            "{name: mv.example.test, type: A, routingPolicy: MultiValue, setIdentifier: y, values: [192.0.2.2]}",
        ])),
        "invalid": hdr.format(kind="FailoverRecord", name="bad", spec="{name: 'bad..name', type: CNAME, ttl: -1, values: [a, b]}"),
        "not-mapping": "- a\n- b\n",
        "anchors": "a: &x [1, 2]\nb: *x\n",
    }
    for n, text in docs.items():
        write("manifest", n + ".yaml", text.encode())

    # probe_body: control (encoding = c % 3, chunk = c // 3 + 1), needle length, needle, body.
    text = b"<html><body>status: ok, all good</body></html>\n" * 4
    def body(enc, chunk, needle, payload):
        return bytes([(chunk - 1) * 3 + enc, len(needle)]) + needle + payload
    write("probe_body", "identity", body(0, 7, b"all good", text))
    write("probe_body", "gzip", body(1, 5, b"ok", gzip.compress(text)))
    named = b"\x1f\x8b\x08" + bytes([8 | 16 | 4 | 2]) + b"\0\0\0\0\0\xff" + b"\x03\0abc" + b"name\0" + b"comment\0" + b"\0\0"
    write("probe_body", "gzip-header-fields", body(1, 3, b"status", named + zlib.compress(text)[2:-4] + b"\0" * 8))
    write("probe_body", "deflate-zlib", body(2, 11, b"status", zlib.compress(text)))
    write("probe_body", "deflate-raw", body(2, 1, b"body", zlib.compress(text)[2:-4]))
    write("probe_body", "gzip-bomb", body(1, 64, b"x", gzip.compress(b"\0" * 1_000_000, 9)))
    write("probe_body", "gzip-corrupt", body(1, 2, b"ok", gzip.compress(text)[:30] + b"\xff" * 20))
    write("probe_body", "deflate-one-byte", body(2, 1, b"", b"\x03"))


if __name__ == "__main__":
    sys.exit(main())
