"""The Python routing client (clients/python/seqd_client): Kafka's murmur2 against the
shared vectors; against a cluster of three nodes in two groups, every read goes straight
to a holder (no node forwards), lists and NumPy arrays carry the sequence, a batch across
owners comes back in request order, and when a holder is SIGKILLed the client fails over
to a replica within each call's deadline."""
import os
import signal
import sys

import numpy as np

import helpers
from cluster_helpers import P, SLOW, Broker, start_three

sys.path.insert(0, os.path.join(helpers.SOURCE, "clients", "python"))
from seqd_client import SeqdClient  # noqa: E402
from seqd_client.partition import murmur2, partition_of_user  # noqa: E402


def test_murmur2_vectors():
    path = os.path.join(helpers.SOURCE, "tests", "unit", "murmur2_vectors.tsv")
    n = 0
    for line in open(path):
        if line.startswith("#") or line.startswith("key"):
            continue
        key, h, p8, p16, p64 = line.rstrip("\n").split("\t")
        assert murmur2(key.encode()) == int(h), key
        if key.isdigit():
            assert [partition_of_user(int(key), q) for q in (8, 16, 64)] == \
                [int(p8), int(p16), int(p64)], key
        n += 1
    assert n > 20


def test_client_routes_directly_and_fails_over(seqd_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQD_STUBS_DIR", str(tmp_path / "stubs"))
    broker = Broker()
    client = None
    try:
        nodes = start_three(seqd_factory, broker, tmp_path)
        users = list(range(1, 41))
        now = helpers.now_ms()
        nodes[0].producer().events([
            dict(user_id=u, time_ms=now - 10000 + k, event_type="view", item_id=u * 10 + k,
                 attributes={"dwell_ms": 1000 + k}) for u in users for k in range(2)])
        for s in nodes:
            for u in users:
                s.wait_visible(u, 2)
        client = SeqdClient([nodes[0].grpc], timeout=1.0 * SLOW)
        m = client.cluster_map()
        assert m.partitions == P and len(m.nodes) == 3
        before = [s.metric("seqd_forwarded_total") for s in nodes]
        for u in users:
            r = client.get(u, "engagements")
            assert list(r.item_ids) == [u * 10 + 1, u * 10]
            arr = client.get_arrays(u, "engagements")
            assert arr["item_ids"].dtype == np.uint64 and arr["timestamps_ms"].dtype == np.int64
            assert list(arr["item_ids"]) == [u * 10 + 1, u * 10]
            assert list(arr["dwell_ms"]) == [1001.0, 1000.0]
            lst = client.get_list(u, "engagements")
            assert [e["item_id"] for e in lst] == [u * 10 + 1, u * 10] and lst[0]["dwell_ms"] == 1001.0
        assert [s.metric("seqd_forwarded_total") for s in nodes] == before  # one hop, always
        order = users[::-1]
        rs = client.batch_get([(u, "engagements") for u in order])
        assert [r.user_id for r in rs] == order
        assert [s.metric("seqd_forwarded_total") for s in nodes] == before
        # SIGKILL a holder: every call still succeeds within its deadline
        assert nodes[1].stop(signal.SIGKILL) == -signal.SIGKILL
        for _ in range(3):
            for u in users:
                assert len(client.get(u, "engagements", timeout=1.0 * SLOW).item_ids) == 2
    finally:
        if client:
            client.close()
        broker.stop()
