"""Misrouted events (PRODUCT.md, "A cluster of nodes"): a producer with librdkafka's
default partitioner (CRC32, not Kafka's murmur2) puts users' events on other partitions
than theirs; seqd re-produces each to its user's partition with `seqd-origin: P:OFFSET`,
applies it from there once, and counts it (/metrics and /status). A copy at or below the
highest origin offset applied from its origin partition (another replica group's, a
replay's, a late one after the owner's restart) is skipped, so that it cannot undo a later
correction: the owner stores that offset with its own offsets and data."""
import os
import sys

import helpers

sys.path.insert(0, os.path.join(helpers.SOURCE, "clients", "python"))
from seqd_client.partition import partition_of_user  # noqa: E402


class Placed(helpers.Producer):
    """Remembers where each message landed (partition, offset), by key."""

    def __init__(self, brokers, partitioner):
        super().__init__(brokers, partitioner=partitioner)
        self.placed = []

    def _cb(self, err, msg):
        super()._cb(err, msg)
        if err is None:
            self.placed.append((int(msg.key()), msg.partition(), msg.offset()))

    def one(self, ev, partition=None, headers=None):
        kw = {"key": str(ev.user_id).encode(), "value": ev.SerializeToString(),
              "on_delivery": self._cb}
        if partition is not None:
            kw["partition"] = partition
        if headers:
            kw["headers"] = headers
        self.p.produce(self.topic, **kw)
        self.flush()


def test_misrouted_events_visible_once_and_counted(seqd_factory):
    s = seqd_factory()
    p = Placed(s.brokers, "consistent_random")
    now = helpers.now_ms()
    users = [helpers.new_user() for _ in range(60)]
    for i, u in enumerate(users):
        for k in range(3):
            p.raw(str(u).encode(), helpers.make_event(
                u, now - 10000 + k, "click", item_id=100 + k, event_id="m-%d-%d" % (u, k)
            ).SerializeToString())
    p.flush()
    helpers.poll(lambda: len(p.placed) == 180 or p.p.poll(0.1), "delivery reports")
    misrouted = sum(1 for (u, part, _) in p.placed if part != partition_of_user(u, 8))
    assert misrouted > 60  # CRC32 vs murmur2 on 8 partitions: most land elsewhere
    for u in users:
        r = s.wait_visible(u, 3)
        assert sorted(r.item_ids) == [100, 101, 102]
    helpers.poll(lambda: s.counts()["misrouted"] == misrouted, "misrouted count")
    assert s.metric("seqd_events_misrouted_total") == misrouted
    assert s.metric("seqd_misrouted_copies_total") == misrouted
    assert s.counts()["events_applied"] == 180


def test_second_copy_of_an_origin_does_not_undo_a_correction(seqd_factory):
    s = seqd_factory()
    now = helpers.now_ms()
    u = helpers.new_user()
    owner = partition_of_user(u, 8)
    wrong = (owner + 1) % 8
    p = Placed(s.brokers, "murmur2_random")
    first = helpers.make_event(u, now - 5000, "click", item_id=1, event_id="fix")
    p.one(first, partition=wrong)  # misrouted: seqd re-produces it to `owner`
    s.wait_item(u, 1)
    _, part, off = p.placed[-1]
    assert part == wrong
    p.one(helpers.make_event(u, now - 4000, "click", item_id=2, event_id="fix"))  # correction
    s.wait_item(u, 2)
    # another group's copy of the same origin arrives late: skipped
    p.one(first, partition=owner, headers=[("seqd-origin", ("%d:%d" % (wrong, off)).encode())])
    p.one(helpers.make_event(u, now - 3000, "view", item_id=9, event_id="sentinel",
                             attributes={"dwell_ms": 900}))
    r = s.wait_item(u, 9)
    assert sorted(r.item_ids) == [2, 9]
    assert s.counts()["misrouted_duplicates"] == 1
    assert s.counts()["misrouted"] == 1


def origin_copies(brokers, partition):
    """{origin header: number of copies} in a partition's log (every message read)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": "t-copies-%d" % partition,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    out = {}
    try:
        c.assign([TopicPartition("seqd.events", partition, OFFSET_BEGINNING)])
        while True:
            m = c.poll(10.0)
            assert m is not None, "no end of partition %d" % partition
            if m.error():
                break  # the end of the partition
            for k, v in m.headers() or []:
                if k == "seqd-origin":
                    out[v.decode()] = out.get(v.decode(), 0) + 1
    finally:
        c.close()
    return out


def log_ends(brokers, partitions):
    """{partition: its log's end offset}."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": "t-ends"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition("seqd.events", p), timeout=30)[1]
                for p in partitions}
    finally:
        c.close()


def test_copies_reproduced_after_a_sigkill_visible_once(seqd_factory, tmp_path, monkeypatch):
    """Two replica groups of one node each, a (g1) and b (g2), both holding every
    partition; events of 12 users produced to one partition not theirs (misrouted). a is
    SIGKILLed (test hook SEQD_KILL_AFTER_COPIES) once a batch's copies are delivered and
    before its commit, so its restart re-produces them; b, which applied the first copies
    (a's, and its own) and stored its offsets past them, is SIGKILLed and restarted before
    that. Every event is visible once, at both nodes, and b skips every one of a's second
    copies: the highest origin offset it applied was stored with its offsets, and loaded
    when it took its partitions on again.
    While a is down, an event E and its correction (same event_id) arrive misrouted on
    another partition, w2; b re-produces and applies both before its SIGKILL. Once b is
    back (a still down), a late copy of E's first origin arrives at E's partition (what a
    re-producer replaying a long log late writes): b skips it and still shows the
    correction (kept only in memory, as before, the origins were forgotten by the restart
    and the late copy undid the correction); so does a, which fills from the log later."""
    import signal
    from confluent_kafka import Producer
    sys.path.insert(0, os.path.dirname(__file__))
    from cluster_helpers import Broker, get_with_md
    P = 8
    broker = Broker(partitions=P)
    try:
        def node(nid, group):
            return seqd_factory(brokers=broker.brokers, data_dir=str(tmp_path / nid),
                                args=["--group", group, "--instance-id", nid])

        def consumed(s, parts, ends):  # s stored offsets up to ends (copies delivered)
            return all(q["next_offset"] >= ends[q["partition"]]
                       for q in s.status()["stream"]["partitions"] if q["partition"] in parts)
        wrong = 5
        users = [u for u in range(1000, 5000) if partition_of_user(u, P) != wrong][:12]
        now = helpers.now_ms()
        evs = [helpers.make_event(u, now - 10000 + k, "click", item_id=u * 10 + k,
                                  event_id="k-%d-%d" % (u, k)) for u in users for k in range(2)]
        monkeypatch.setenv("SEQD_KILL_AFTER_COPIES", "1")
        a = node("a", "g1")  # dies at its first batch whose copies went out
        monkeypatch.delenv("SEQD_KILL_AFTER_COPIES")
        b = node("b", "g2")
        prod = Producer({"bootstrap.servers": broker.brokers, "linger.ms": 0})
        for ev in evs:
            prod.produce("seqd.events", key=str(ev.user_id).encode(),
                         value=ev.SerializeToString(), partition=wrong)
        assert prod.flush(60) == 0
        assert a.wait_exit() == -signal.SIGKILL
        # E and its correction, misrouted on w2, while a is down
        w2 = (wrong + 1) % P
        ue = next(u for u in range(5000, 6000) if partition_of_user(u, P) not in (wrong, w2))
        fix = [helpers.make_event(ue, now - 5000 + k, "click", item_id=ue * 10 + 1 + k,
                                  event_id="fix") for k in range(2)]
        placed = []
        for ev in fix:
            prod.produce("seqd.events", key=str(ue).encode(), value=ev.SerializeToString(),
                         partition=w2, on_delivery=lambda err, m: placed.append(m.offset()))
        assert prod.flush(60) == 0 and len(placed) == 2
        helpers.poll(lambda: b.counts()["misrouted"] == len(evs) + 2, "b re-produced every event")
        ends = log_ends(broker.brokers, range(P))
        helpers.poll(lambda: consumed(b, range(P), ends), "b stored its offsets past every copy")
        # a's copies that went out before its crash (b's are the other ones)
        first = {o for o, n in copies_by_origin(broker.brokers, P, wrong).items() if n == 2}
        assert first
        assert list(b.get(ue).item_ids) == [ue * 10 + 2]  # the correction
        assert b.stop(signal.SIGKILL) == -signal.SIGKILL
        b = node("b", "g2")
        late = Placed(broker.brokers, "murmur2_random")
        late.one(fix[0], partition=partition_of_user(ue, P),
                 headers=[("seqd-origin", ("%d:%d" % (w2, min(placed))).encode())])
        late.one(helpers.make_event(ue, now - 4000, "view", item_id=ue * 10 + 9,
                                    event_id="sentinel", attributes={"dwell_ms": 900}))
        assert list(b.wait_item(ue, ue * 10 + 9).item_ids) == [ue * 10 + 9, ue * 10 + 2]
        a = node("a", "g1")  # replays `wrong` from offset 0: the copies go out again
        helpers.poll(lambda: consumed(a, [wrong, w2], log_ends(broker.brokers, [wrong, w2])),
                     "a's second copies delivered")
        ends = log_ends(broker.brokers, range(P))
        for s in (a, b):
            helpers.poll(lambda: consumed(s, range(P), ends), "every copy consumed")
        copies = copies_by_origin(broker.brokers, P, wrong)
        assert len(copies) == len(evs), copies
        assert {o for o, n in copies.items() if n == 3} == first, copies  # a's twice, b's once
        assert set(copies.values()) <= {2, 3}, copies
        for u in users:
            for s in (a, b):
                r, md = get_with_md(s, u)
                assert list(r.item_ids) == [u * 10 + 1, u * 10], (u, s is a, list(r.item_ids))
        for s, nid in ((a, "a"), (b, "b")):  # each node's own data
            r = helpers.poll(lambda: (lambda r, md: r if md.get("seqd-served-by") == nid else None)(
                *get_with_md(s, ue)), "a read of user %d served by %s" % (ue, nid))
            assert list(r.item_ids) == [ue * 10 + 9, ue * 10 + 2], (nid, list(r.item_ids))
        # the late copy, and a's second copies of `wrong`'s origins and of E's two
        assert b.counts()["misrouted_duplicates"] == 1 + len(evs) + 2
        assert b.counts()["events_applied"] == 1  # the sentinel
    finally:
        broker.stop()


def copies_by_origin(brokers, n_parts, wrong):
    """{origin: copies} of `wrong`'s origins over every partition but `wrong`."""
    out = {}
    for p in range(n_parts):
        if p != wrong:
            for o, n in origin_copies(brokers, p).items():
                if o.startswith("%d:" % wrong):
                    out[o] = out.get(o, 0) + n
    return out

