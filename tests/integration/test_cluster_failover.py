"""Failover in a cluster of three nodes in two groups (PRODUCT.md, "A cluster of nodes"):
node b is SIGKILLed while a reader calls node a every 50 ms with a 1 s deadline for users of
every partition and events keep arriving: no read fails (a forwards to b's replica in the
other group until its group gives it b's partitions and it has filled them); afterwards
a holds everything, and every event, those produced meanwhile and misrouted ones (a
producer with librdkafka's default partitioner) included, is visible once on every node."""
import signal
import threading
import time


import helpers
from cluster_helpers import P, SLOW, Broker, get_with_md, nodes_by_id, partition_of_user, start_three


def test_sigkill_failover_no_failed_read(seqd_factory, tmp_path):
    broker = Broker()
    try:
        nodes = start_three(seqd_factory, broker, tmp_path)
        a, b, c = nodes
        users = list(range(1, 81))
        assert {partition_of_user(u, P) for u in users} == set(range(P))
        now = helpers.now_ms()
        want = {u: set() for u in users}
        evs = []
        for u in users:
            for k in range(2):
                evs.append(dict(user_id=u, time_ms=now - 100000 + k, event_type="click",
                                item_id=u * 100 + k))
                want[u].add(u * 100 + k)
        a.producer().events(evs)
        # misrouted: librdkafka's default partitioner
        mis = helpers.Producer(broker.brokers, partitioner="consistent_random")
        mis.events([dict(user_id=u, time_ms=now - 50000, event_type="click", item_id=u * 100 + 50)
                    for u in users])
        for u in users:
            want[u].add(u * 100 + 50)
        for s in nodes:
            for u in users:
                helpers.poll(lambda: set(s.get(u).item_ids) == want[u], "user %d on %s" % (u, s.node_id))

        failures, reads = [], [0]
        stop = threading.Event()
        pb = helpers.pb()

        def reader():
            import grpc as g
            ch = g.insecure_channel(a.grpc)
            stub = helpers.stubs()[1].SequenceServiceStub(ch)
            i = 0
            while not stop.is_set():
                u = users[i % len(users)]
                i += 1
                try:
                    stub.GetSequence(pb.GetSequenceRequest(user_id=u, sequence="engagements"),
                                     timeout=1.0 * SLOW)
                    reads[0] += 1
                except g.RpcError as e:
                    failures.append((u, e.code(), e.details()))
                stop.wait(0.05)
            ch.close()

        during = helpers.Producer(broker.brokers)

        def producer():
            k = 0
            while not stop.is_set():
                u = users[k % len(users)]
                during.events([dict(user_id=u, time_ms=helpers.now_ms() - 1000,
                                    event_type="click", item_id=u * 100 + 1000 + k)])
                want[u].add(u * 100 + 1000 + k)
                k += 1
                stop.wait(0.1)

        threads = [threading.Thread(target=reader), threading.Thread(target=producer)]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            assert b.stop(signal.SIGKILL) == -signal.SIGKILL
            helpers.poll(lambda: (lambda m: "b" not in m and m["a"]["partitions"] == list(range(P))
                                  and m["a"]["caught_up"] == list(range(P)))(nodes_by_id(a)),
                         "a holds and filled every partition", timeout=120, interval=0.5)
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert reads[0] > 50
        assert not failures, failures[:5]
        for s in (a, c):
            for u in users:
                r = helpers.poll(lambda: (lambda r: r if set(r.item_ids) == want[u] else None)(
                    s.get(u)), "user %d complete on %s" % (u, s.node_id))
                assert len(r.item_ids) == len(want[u])  # once each
            r, md = get_with_md(s, users[0])
            assert md["seqd-served-by"] == s.node_id
    finally:
        broker.stop()
