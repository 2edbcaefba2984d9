"""Misrouted events (PRODUCT.md, "A cluster of nodes"): a producer with librdkafka's
default partitioner (CRC32, not Kafka's murmur2) puts users' events on other partitions
than theirs; seqd re-produces each to its user's partition with `seqd-origin: P:OFFSET`,
applies it from there once, and counts it (/metrics and /status). A second copy of one
origin (another replica group re-producing it) is skipped, so that it cannot undo a later
correction."""
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
