"""Write lanes (issue 10, item 2; server/consumer.c, server/lanes.h): the consumer commits
partition p's events in lane p % --write-lanes, the lanes' writes at once, each with its
own partitions' offsets. With a `seqctl broker` of 4 partitions and 2 lanes:
- a user's copies of one event_id (corrections, redeliveries) in one burst and across
  commits end as the last copy, once: a user's events are in one lane, in order;
- a lane whose write fails while the other's succeeds (test hook SEQD_FAIL_LANE="L:N",
  as a failed RocksDB write) is retried without applying the other lane's messages again
  (exact applied and malformed counts), and a misrouted copy (header seqd-origin) in the
  failed write is applied by the retry, not skipped as already applied;
- a SIGKILL while one lane's writes always fail (its partitions' offsets stay behind,
  the other lane's advance): after a restart the behind partitions are applied from
  their own stored offsets, what the other lane wrote is not applied again, every event
  is visible once, and the stored as-of watermark never named the failed lane's newest
  event time;
- a commit cut by its work budget in which lane 1's write fails and lane 0's succeeds
  (8 partitions, every event in 16 sequences: a commit's gathered messages take more
  than the budget): the retry skips a kept lane-0 partition's messages below the offset
  its write stored and applies the one at it (every event applied once, exact count).
- the pipeline (consumer.c: a set of batches filled while the previous one commits):
  under a backlog whose corrections follow their first copy by about one commit (another
  bucket, so only the id index links them), with lane 1's writes failing while a set is
  filled behind them, then a stop and a restart mid-backlog: every event applied once
  (exact count before the stop), every id visible once as its last copy. A correction
  filled while its first copy's write is in flight finds it in that batch
  (seq_store_batch_set_prior); a set filled behind a failed write is retried, not
  committed past it; a stop waits for the write in flight.
While one lane's writes fail, the other lane gets no further than what one commit's
work budget covers (each retry starts over from the same messages): a failing lane
holds the stream back, as a failing single write always did."""
import json
import os
import random
import signal
import sys
import time

import helpers
from helpers import Producer, make_event, now_ms, poll
from cluster_helpers import Broker
from test_crash import DEFINITION, produce_chunk, start_broker

sys.path.insert(0, os.path.join(helpers.SOURCE, "clients", "python"))
from seqd_client.partition import partition_of_user  # noqa: E402

N_USERS = 60
PARTS = 4


def caught_up(s):
    return s.metric("seqd_consumer_caught_up") == 1 and s.metric("seqd_consumer_lag_messages") == 0


def read_items(s, users, seq="all"):
    return {u: sorted(s.get(u, seq).item_ids) for u in users}


def start(seqd_factory, data, brokers, lanes=2):
    return seqd_factory(definition=DEFINITION, data_dir=data, brokers=brokers,
                        args=["--write-lanes", str(lanes)])


def test_users_copies_in_order_across_lanes(seqd_factory, tmp_path):
    broker, brokers = start_broker()
    try:
        base = now_ms() - 6 * 3600000
        users = range(1, N_USERS + 1)
        assert {partition_of_user(u, PARTS) % 2 for u in users} == {0, 1}  # both lanes

        def copy(u, k):
            """Copy k of user u's event "fix-u": its own time (moving across the 1 h
            buckets), item and value; the last copy must win."""
            return make_event(u, base + (k * 37 % 5) * 3600000 + u, "click", 1000 * k + u,
                              "fix-%d" % u, {"n": float(k)})

        burst = []
        for k in range(5):  # five copies of each user's event in one burst (one commit)
            for u in users:
                burst.append(copy(u, k))
                burst.append(make_event(u, base + 100 * k + u, "view", 100000 + 1000 * k + u,
                                        "own-%d-%d" % (u, k), {"n": -1.0}))
        producer = Producer(brokers)
        produce_chunk(producer, burst)
        s = start(seqd_factory, str(tmp_path / "data"), brokers)
        poll(lambda: caught_up(s) and s.counts()["events_applied"] == len(burst),
             "the burst applied")
        for k in (5, 6):  # two more copies each, commits later
            produce_chunk(producer, [copy(u, k) for u in users])
            poll(lambda: caught_up(s) and s.counts()["events_applied"] == len(burst) + (k - 4) * N_USERS,
                 "copy %d applied" % k)
        got = read_items(s, users)
        for u in users:
            want = sorted([6000 + u] + [100000 + 1000 * k + u for k in range(5)])
            assert got[u] == want, "user %d (partition %d): %r" % (u, partition_of_user(u, PARTS), got[u])
            r = s.get(u, "all")
            live = [v for i, v in zip(r.item_ids, r.columns[0].values) if i == 6000 + u]
            assert live == [6.0]
        assert s.stop() == 0
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)


def events(base, n, tag):
    return [make_event(1 + i % N_USERS, base + i * 1000, "click", i, "%s-%d" % (tag, i),
                       {"n": float(i)}) for i in range(n)]


def malformed_messages(n):
    """Undecodable payloads keyed like users, so that they land in every partition."""
    return [(str(1 + i % N_USERS).encode(), b"\xff\xfe not protobuf %d" % i) for i in range(n)]


def test_failed_lane_write_retried_without_applying_twice(seqd_factory, tmp_path, monkeypatch):
    broker, brokers = start_broker()
    try:
        evs = events(now_ms() - 3600000, 2000, "lane")
        monkeypatch.setenv("SEQD_FAIL_LANE", "1:3")
        data = str(tmp_path / "data")
        s = start(seqd_factory, data, brokers)
        poll(lambda: caught_up(s), "every partition fetched")
        # Produced while seqd fetches every partition, in one flush of fewer messages than
        # one commit takes (BUDGET_MIN_MESSAGES), so that the failed commits hold both
        # lanes whatever order the partitions' fetches come in (a log filled before the
        # start let the first commit hold lane 1's partitions alone, now and then).
        producer = Producer(brokers)
        for k, v in malformed_messages(20):
            producer.raw(k, v)
        # a copy of a misrouted event (as another node re-produces it) on a partition of
        # lane 1, whose writes fail: the origin it names counts as applied only once a
        # write stored it (server/origins.h), so each retry applies it again
        u1 = next(u for u in range(1, N_USERS + 1) if partition_of_user(u, PARTS) % 2 == 1)
        q = partition_of_user(u1, PARTS)
        copied = make_event(u1, now_ms() - 1000, "click", 77777, "copied", {"n": 1.0})
        producer.p.produce(producer.topic, key=str(u1).encode(), value=copied.SerializeToString(),
                           partition=q, headers=[("seqd-origin", b"%d:7" % ((q + 1) % PARTS))])
        produce_chunk(producer, evs[:600])
        poll(lambda: s.counts()["events_applied"] == 601 and s.counts()["malformed"] == 20,
             "the first chunk applied after the failed writes")
        produce_chunk(producer, evs[600:])
        poll(lambda: caught_up(s) and s.counts()["events_applied"] == 2001 and
             s.metric("seqd_store_write_failing") == 0, "caught up after the failed writes")
        assert s.metric("seqd_store_write_errors_total") == 3
        assert "write lane 0 stored" in s.stderr_text()  # lane 0 wrote while lane 1 failed
        c = s.counts()
        assert (c["events_applied"], c["malformed"], c["misrouted_duplicates"]) == (2001, 20, 0)
        want = {u1: [77777]}
        for e in evs:
            want.setdefault(e.user_id, []).append(e.item_id)
        assert read_items(s, want) == {u: sorted(v) for u, v in want.items()}
        # the kept lane's partitions resume where its write left them: the retry skipping
        # their messages is no jump in offsets, so no partition reports a gap
        parts = s.status()["stream"]["partitions"]
        assert len(parts) == PARTS and all(p["log_from_ms"] == 0 for p in parts), parts
        # offsets: a restart applies nothing again, and the stored malformed count is 20
        assert s.stop(signal.SIGKILL) == -signal.SIGKILL
        monkeypatch.delenv("SEQD_FAIL_LANE")
        s = start(seqd_factory, data, brokers)
        produce_chunk(producer, [make_event(1, now_ms(), "click", 99999, "sentinel", {"n": 1.0})])
        s.wait_item(1, 99999, "all")
        poll(lambda: caught_up(s), "caught up after the restart")
        assert s.counts()["events_applied"] == 1
        code, body = s.http("/malformed")
        assert code == 200 and json.loads(body)["count"] == 20  # stored once each
        assert s.stop() == 0
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)


def test_sigkill_with_one_lane_behind(seqd_factory, tmp_path, monkeypatch):
    broker, brokers = start_broker()
    try:
        base = now_ms() - 3600000

        def in_lane0(u):
            return partition_of_user(u, PARTS) % 2 == 0

        lane1_user = next(u for u in range(1, N_USERS + 1) if not in_lane0(u))
        newest = make_event(lane1_user, now_ms() - 1000, "click", 5000, "newest", {"n": 0.0})
        behind = events(base, 3000, "behind")
        # Two chunks, so that what lane 0 commits does not depend on how the consumer's
        # first fetches order the partitions (a failing lane holds the other to the
        # messages of the commit being retried): first lane 0's events alone (nothing for
        # lane 1 to write), then, while lane 1 fails, fewer messages than one commit takes
        # (BUDGET_MIN_MESSAGES), both lanes, with the newest event time first in lane 1.
        first = [e for e in behind[:2000] if in_lane0(e.user_id)]
        second = [newest] + behind[2000:]
        evs = first + second
        monkeypatch.setenv("SEQD_FAIL_LANE", "1:1000000")  # lane 1 never writes
        data = str(tmp_path / "data")
        s = start(seqd_factory, data, brokers)
        poll(lambda: caught_up(s), "every partition fetched")
        producer = Producer(brokers)
        produce_chunk(producer, first)
        poll(lambda: s.counts()["events_applied"] == len(first), "lane 0's events applied")
        produce_chunk(producer, second)
        lane0_users = {e.user_id for e in evs if in_lane0(e.user_id)}
        n_lane0 = sum(1 for e in evs if e.user_id in lane0_users)
        # lane 1 fails, lane 0 commits what the retried commit holds for it
        poll(lambda: s.metric("seqd_store_write_errors_total") >= 2, "lane 1 failing")
        visible = sum(len(s.get(u, "all").item_ids) for u in lane0_users)
        assert visible > 0
        assert len(s.get(lane1_user, "all").item_ids) == 0  # lane 1: nothing written
        killed_at = now_ms()
        assert s.stop(signal.SIGKILL) == -signal.SIGKILL
        monkeypatch.delenv("SEQD_FAIL_LANE")
        s = start(seqd_factory, data, brokers)
        poll(lambda: caught_up(s) and sum(len(s.get(u, "all").item_ids) for u in
                                           range(1, N_USERS + 1)) == len(evs),
             "every event visible after the restart")
        # what lane 0 had written (at least what was visible) was not applied again;
        # lane 1's partitions were, from their own stored offsets
        applied = s.counts()["events_applied"]
        assert len(evs) - n_lane0 <= applied <= len(evs) - visible, (applied, visible)
        want = {}
        for e in evs:
            want.setdefault(e.user_id, []).append(e.item_id)
        assert read_items(s, want) == {u: sorted(v) for u, v in want.items()}
        # the stored as-of watermark series never named lane 1's newest time before the
        # kill: lane 1 had written nothing (the change goes in lane 1's own write). Asked
        # of a lane 0 user (the node began holding lane 1's partitions at the restart).
        wm = s.get(min(lane0_users), "all", as_of_ms=killed_at).stream_watermark_ms
        assert wm < newest.event_time_ms, (wm, newest.event_time_ms)
        assert s.stop() == 0
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)


# Every event goes into 16 sequences: work enough per message that a commit of the
# gathered messages is cut by its budget.
HEAVY = dict(DEFINITION, sequences=[dict(DEFINITION["sequences"][0], name="all%d" % k)
                                    for k in range(16)])


def test_retry_of_a_cut_commit_applies_the_kept_lanes_next_message(seqd_factory, tmp_path, monkeypatch):
    # A commit cut by its work budget (BATCH_BUDGET_MS, checked past BUDGET_MIN_MESSAGES)
    # in which lane 1's write fails and lane 0's succeeds: a lane-0 partition cut in the
    # middle has gathered messages left from exactly the offset its write stored; the
    # retry and the commits after it skip its messages below that offset and apply the
    # one at it (skipping it lost an event whose offset was stored past it).
    # 8 partitions: a backlog on the even ones (lane 0) only, then, while seqd works
    # through it, a few events on each odd one (lane 1) followed by more on the even
    # ones: the commit that holds lane 1's first (failing) write is one of a full
    # gathered batch, cut in a lane-0 partition's run after the lane-1 messages.
    # The cut is the consumer's time budget: where a commit's gathered messages take less
    # than it, nothing is cut and this passes without testing the skip; it never fails on
    # a correct consumer.
    parts = 8
    broker = Broker(partitions=parts)
    try:
        users = {p: [] for p in range(parts)}
        u = 0
        while any(len(v) < 25 for v in users.values()):
            u += 1
            users[partition_of_user(u, parts)].append(u)
        base = now_ms() - 2 * 3600000
        evs = []

        def add(q, n):
            k = len(evs)
            new = [make_event(users[q][i % 25], base + k + i, "click", k + i, "cut-%d" % (k + i),
                              {"n": float(i)}) for i in range(n)]
            evs.extend(new)
            return new

        producer = Producer(broker.brokers)
        produce_chunk(producer, [e for q in range(0, parts, 2) for e in add(q, 12000)])
        monkeypatch.setenv("SEQD_FAIL_LANE", "1:3")
        s = seqd_factory(definition=HEAVY, data_dir=str(tmp_path / "data"), brokers=broker.brokers,
                         args=["--write-lanes", "2"])
        poll(lambda: s.counts()["events_applied"] > 0, "seqd working through the backlog")
        produce_chunk(producer, [e for q in range(1, parts, 2) for e in add(q, 3)] +
                      [e for q in range(0, parts, 2) for e in add(q, 1500)])
        ends = [sum(1 for e in evs if partition_of_user(e.user_id, parts) == q) for q in range(parts)]

        def consumed():  # every message's offset stored (what the bug skipped included)
            st = s.status()["stream"]["partitions"]
            return ([p["next_offset"] for p in st] == ends and
                    s.metric("seqd_store_write_failing") == 0)
        poll(consumed, "every partition's offset at the log's end after lane 1's failed writes")
        assert s.metric("seqd_store_write_errors_total") == 3
        assert s.counts()["events_applied"] == len(evs)
        want = {}
        for e in evs:
            want.setdefault(e.user_id, []).append(e.item_id)
        assert read_items(s, want, "all15") == {u: sorted(v) for u, v in want.items()}
        assert s.stop() == 0
    finally:
        broker.stop()


def corrected_backlog(base, n, first, rng):
    """Messages first..first+n-1 of a backlog: message i is event "pipe-i" (user 1 + i %
    N_USERS, item i) unless i % 7 == 1 and i - first >= 6000: then it corrects the event of
    a random earlier message of its user 400-6000 back (never itself a correction: k is
    no multiple of 7), 2 h (and 1 ms) earlier, so in another bucket, with its own item and
    value. A correction lands in the commit after its first copy's as often as in its own
    or a later one (a commit takes 1024 messages or more, BUDGET_MIN_MESSAGES)."""
    out = []
    for i in range(first, first + n):
        user = 1 + i % N_USERS
        eid, t = "pipe-%d" % i, base + i * 50
        if i % 7 == 1 and i - first >= 6000:
            k = rng.choice([k for k in range(400 // N_USERS + 1, 6000 // N_USERS) if k % 7])
            j = i - N_USERS * k
            eid, t = out[j - first].event_id, out[j - first].event_time_ms - 7200001
        out.append(make_event(user, t, "click", i, eid, {"n": float(i)}))
    return out


def check_last_copies(s, evs):
    last = {}
    for e in evs:
        last[(e.user_id, e.event_id)] = e
    want = {}
    for (u, _), e in last.items():
        want.setdefault(u, []).append(e.item_id)
    got = read_items(s, want)
    bad = {u: ("extra", sorted(set(got[u]) - set(v)), "missing", sorted(set(v) - set(got[u])))
           for u, v in want.items() if got[u] != sorted(v)}
    assert not bad, "%d users whose ids are not each visible once as their last copy: %r" % \
        (len(bad), {u: bad[u] for u in list(bad)[:3]})


def test_pipeline_corrections_failures_and_stop(seqd_factory, tmp_path, monkeypatch):
    rng = random.Random(20261207)
    broker, brokers = start_broker()
    try:
        base = now_ms() - 5 * 3600000
        first = corrected_backlog(base, 30000, 0, rng)
        assert sum(1 for e in first if e.event_id != "pipe-%d" % e.item_id) > 3000
        producer = Producer(brokers)
        produce_chunk(producer, first)
        # lane 1's first 3 writes fail; the backlog keeps a set filled behind each
        monkeypatch.setenv("SEQD_FAIL_LANE", "1:3")
        data = str(tmp_path / "data")
        s = start(seqd_factory, data, brokers)
        poll(lambda: caught_up(s) and s.counts()["events_applied"] >= len(first) and
             s.metric("seqd_store_write_failing") == 0, "the backlog applied", timeout=120)
        assert s.metric("seqd_store_write_errors_total") == 3
        assert s.counts()["events_applied"] == len(first)  # none applied twice
        check_last_copies(s, first)
        monkeypatch.delenv("SEQD_FAIL_LANE")
        # a stop mid-backlog (commits in flight), then a restart from the stored offsets
        second = corrected_backlog(base, 40000, len(first), rng)
        produce_chunk(producer, second)
        poll(lambda: s.counts()["events_applied"] > len(first) + 2000, "the second backlog started")
        t0 = time.monotonic()
        assert s.stop() == 0
        assert time.monotonic() - t0 < 10
        s = start(seqd_factory, data, brokers)
        poll(lambda: caught_up(s), "caught up after the restart", timeout=120)
        check_last_copies(s, first + second)
        assert s.stop() == 0
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
