#!/usr/bin/env python3
"""Generates a batch builder input: N events of users 1..U spread over [start, end), as
JSON Lines or length-delimited protobuf seqd.v1.Event (hand-encoded: no generated stubs
needed). Types click/save/view, attributes dwell_ms (and position on half of them), ids
"g<i>"; --dup-every K re-sends every K-th event's id with another time (a correction).
Deterministic for a given --seed. Used by the build-rate measurement and the memory test.

  gen_events.py --n 3000000 --users 100000 --start-ms A --end-ms B --format pb --out F
"""
import argparse
import json
import random
import struct

TYPES = ["click", "save", "view"]


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def attr_entry(name, value):
    k = name.encode()
    body = b"\x0a" + varint(len(k)) + k + b"\x11" + struct.pack("<d", value)
    return b"\x32" + varint(len(body)) + body


def encode_pb(user, t, typ, item, eid, attrs):
    t_enc = t if t >= 0 else t + (1 << 64)
    ty, ei = typ.encode(), eid.encode()
    msg = (b"\x08" + varint(user) + b"\x10" + varint(t_enc) + b"\x1a" + varint(len(ty)) + ty
           + b"\x20" + varint(item) + b"\x2a" + varint(len(ei)) + ei
           + b"".join(attr_entry(k, v) for k, v in attrs.items()))
    return varint(len(msg)) + msg


def events(a):
    rnd = random.Random(a.seed)
    span = a.end_ms - a.start_ms
    for i in range(a.n):
        j = i - 1 if a.dup_every and i and i % a.dup_every == 0 else i
        user = 1 + (j * 7919) % a.users
        attrs = {"dwell_ms": float(500 + rnd.randrange(5000))}
        if i % 2:
            attrs["position"] = float(rnd.randrange(50))
        yield (user, a.start_ms + rnd.randrange(span), TYPES[rnd.randrange(3)],
               rnd.randrange(1 << 40), "g%d" % j, attrs)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--users", type=int, default=100000)
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--end-ms", type=int, required=True)
    p.add_argument("--format", choices=["jsonl", "pb"], default="pb")
    p.add_argument("--dup-every", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    with open(a.out, "wb") as f:
        buf = []
        for user, t, typ, item, eid, attrs in events(a):
            if a.format == "pb":
                buf.append(encode_pb(user, t, typ, item, eid, attrs))
            else:
                buf.append((json.dumps({"user_id": user, "event_time_ms": t, "event_type": typ,
                                        "item_id": item, "event_id": eid,
                                        "attributes": attrs}) + "\n").encode())
            if len(buf) >= 100000:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))


if __name__ == "__main__":
    main()
