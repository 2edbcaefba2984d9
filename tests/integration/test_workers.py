"""gRPC connections are spread evenly over seqd's worker threads (server/grpc.c,
balance_accepted): the kernel's SO_REUSEPORT hash alone leaves a few long-lived
connections uneven (16 over 2 workers: exactly 8/8 about one time in five), and then one
worker's calls queue while the other idles. Read through /metrics'
seqd_grpc_worker_connections, with a real gRPC client, one connection per channel."""
import re
import time

import grpc

from helpers import new_user, pb, stubs


def worker_conns(s):
    code, body = s.http("/metrics")
    assert code == 200
    return {m.group(1): int(float(m.group(2))) for m in
            re.finditer(r'^seqd_grpc_worker_connections\{worker="([^"]+)"\} (\S+)$', body, re.M)}


def open_channels(s, n):
    chans = []
    for _ in range(n):
        # a local subchannel pool: a connection of its own per channel, not one shared
        ch = grpc.insecure_channel(s.grpc, options=[("grpc.use_local_subchannel_pool", 1)])
        stubs()[1].SequenceServiceStub(ch).GetSequence(
            pb().GetSequenceRequest(user_id=new_user(), sequence="engagements"), timeout=30)
        chans.append(ch)
    return chans


def test_connections_spread_evenly_over_workers(seqd_factory):
    s = seqd_factory(args=["--threads", "2"])
    assert worker_conns(s) == {"seqd-grpc0": 0, "seqd-grpc1": 0}
    chans = open_channels(s, 16)
    try:
        assert worker_conns(s) == {"seqd-grpc0": 8, "seqd-grpc1": 8}
        # closed connections leave the count, and new ones go to the emptier worker
        for ch in chans[:6]:
            ch.close()
        deadline = time.time() + 10
        while sum(worker_conns(s).values()) != 10 and time.time() < deadline:
            time.sleep(0.05)
        assert sum(worker_conns(s).values()) == 10
        before = worker_conns(s)
        chans += open_channels(s, 6)
        after = worker_conns(s)
        assert sum(after.values()) == 16
        assert abs(after["seqd-grpc0"] - after["seqd-grpc1"]) <= max(
            1, abs(before["seqd-grpc0"] - before["seqd-grpc1"]) - 6), (before, after)
    finally:
        for ch in chans:
            ch.close()
