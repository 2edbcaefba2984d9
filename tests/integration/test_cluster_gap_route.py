"""Routing prefers a replica without a gap (PRODUCT.md "A node that acquires a partition":
a holder caught up *with a gap* holds the partition's stream only from some time on).

Partition X's log is cut while node a (group g1) reads it: a consumed every message
before the mock broker dropped them, so a holds X whole. Nodes b and c (group g2) start
after the cut and split the two partitions: the one that takes X (hx) is caught up with
a gap (the events produced before the cut are gone from the log); the other (cx) does
not hold X. Then reads of X's users go to a: from cx (a is in another group, and the
router used to try its own group's caught-up holder first), from hx itself (it forwards
rather than answer from its gap) and from the Python client (the map's gap_partitions).
Once a is gone, hx, the only holder left, answers (seqd-served-by names it), the gap
showing as the event it misses; no read fails meanwhile, though a's entry stays in the
map until it is silent for 10 s (hx forwards to its own address last: read there)."""
import signal

from confluent_kafka import Producer

import helpers
from cluster_helpers import SLOW, Broker, get_with_md, nodes_by_id, partition_of_user
from seqd_client import SeqdClient

P = 2
X = 0
TOPIC = "seqd.events"
FILLER = b"\xff" * 900000  # not an Event: kept aside as malformed, never applied


def users_of(p, n, skip=0):
    return [u for u in range(1, 10000) if partition_of_user(u, P) == p][skip:skip + n]


def produce(prod, u, item, partition):
    ev = helpers.make_event(u, helpers.now_ms() - 60000, "click", item_id=item)
    prod.produce(TOPIC, key=str(u).encode(), value=ev.SerializeToString(), partition=partition)
    assert prod.flush(60) == 0


def served(s, u, **kw):
    r, md = get_with_md(s, u, timeout=30 * SLOW, **kw)
    return list(r.item_ids), md.get("seqd-served-by")


def g2_settled(s):
    """(holder of X in g2, the other) once s's map lists a, b, c, each ready and caught up
    on what it holds, g2's two nodes splitting the partitions and X's holder in g2
    reporting its gap; else None."""
    m = nodes_by_id(s)
    if set(m) != {"a", "b", "c"}:
        return None
    if any(sorted(e["caught_up"]) != sorted(e["partitions"]) or not e["ready"]
           for e in m.values()):
        return None
    if sorted(m["b"]["partitions"] + m["c"]["partitions"]) != list(range(P)) or \
            not m["b"]["partitions"] or not m["c"]["partitions"]:
        return None
    hx = "b" if X in m["b"]["partitions"] else "c"
    if [g["partition"] for g in m[hx].get("gaps", [])] != [X] or m["a"].get("gaps"):
        return None
    return hx, "c" if hx == "b" else "b"


def test_reads_prefer_the_replica_without_a_gap(seqd_factory, tmp_path):
    broker = Broker(partitions=P)
    try:
        def node(nid, group):
            return seqd_factory(brokers=broker.brokers, data_dir=str(tmp_path / nid),
                                args=["--group", group, "--instance-id", nid])
        a = node("a", "g1")
        old, new = users_of(X, 2), users_of(X, 2, skip=2)
        prod = Producer({"bootstrap.servers": broker.brokers, "linger.ms": 0,
                         "message.max.bytes": 1000000, "message.timeout.ms": 60000})
        for u in old:
            produce(prod, u, 100 + u, X)
        for u in old:
            a.wait_item(u, 100 + u)
        for i in range(8):  # one message set each: the mock's 5 MiB bound drops the oldest
            prod.produce(TOPIC, key=b"filler", value=FILLER, partition=X)
            assert prod.flush(60) == 0
        for u in new:  # after the cut: every holder has these
            produce(prod, u, 200 + u, X)
        for u in new:
            a.wait_item(u, 200 + u)
        nodes = {"a": a, "b": node("b", "g2"), "c": node("c", "g2")}
        hx, cx = helpers.poll(lambda: all(g2_settled(s) for s in nodes.values()) and
                              g2_settled(a), "g2 settled, X's holder in g2 with a gap")
        # the premise: hx misses the events before the cut (read where it is, forwarded)
        assert served(nodes[hx], old[0], metadata=[("seqd-forwarded", "1")]) == ([], hx)
        # every node, the gapped holder included, reads X's users at a
        for nid in ("a", hx, cx):
            for u in old:
                assert served(nodes[nid], u) == ([100 + u], "a"), (nid, u)
            for u in new:
                assert served(nodes[nid], u) == ([200 + u], "a"), (nid, u)
        # the Python client goes straight to a
        seeds = [nodes[cx].grpc]
        c = SeqdClient(seeds, timeout=5.0 * SLOW)
        assert c.holders(old[0]) == [a.grpc, nodes[hx].grpc]
        r, by = c.get_served(old[0], "engagements")
        assert (list(r.item_ids), by) == ([100 + old[0]], "a")

        # a gone: the gapped holder is the only one left, and answers (named in the trailer)
        a.stop(signal.SIGKILL)
        assert "a" in nodes_by_id(nodes[cx])  # still in the map (silent for < 10 s)
        for nid in (hx, cx):
            for u in old:
                assert served(nodes[nid], u) == ([], hx), (nid, u)
            for u in new:
                assert served(nodes[nid], u) == ([200 + u], hx), (nid, u)
        r, by = c.get_served(new[0], "engagements")
        assert (list(r.item_ids), by) == ([200 + new[0]], hx)
        # once a left the map, the client's holders are hx alone
        helpers.poll(lambda: "a" not in nodes_by_id(nodes[cx]), "a left the map", timeout=60)
        c.refresh()
        assert c.holders(new[0]) == [nodes[hx].grpc]
        c.close()
    finally:
        broker.stop()
