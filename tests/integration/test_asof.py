"""As-of reads (PRODUCT.md "As of T"): the stream as applied by T (a correction applied
later does not show; the copy it replaced does), the batch coverage committed at T (loads
and rollbacks after T undone), the generation, watermarks and gap at T, per-entry T in
BatchGetSequences, and the refusals (--history-ms 0, before the node began, too far
ahead)."""
import datetime
import json
import time

import grpc
import pytest

from helpers import DAY, HOUR, make_event, new_user, now_ms, pb, poll
from test_batch_crash import A, B, USERS, build, load
from test_rollback import rollback, start


def mark():
    """A wall-clock instant strictly between what happened before and what comes after."""
    time.sleep(0.01)
    t = now_ms()
    time.sleep(0.01)
    return t


def refused(s, **kw):
    with pytest.raises(grpc.RpcError) as e:
        s.get(kw.pop("user_id", 1), **kw)
    return e.value.code(), e.value.details()


def test_stream_and_batch_as_of(tmp_path, stubs):
    s = start(str(tmp_path))
    born = mark()
    u = new_user()
    now = now_ms()
    p = s.producer()
    p.events([make_event(u, now - 2 * HOUR, "click", 1, "e1")])
    p.flush()
    s.wait_visible(u, 1)
    t1 = mark()
    # a correction of e1 (new time, new item) and a new event
    p.events([make_event(u, now - HOUR, "click", 11, "e1"), make_event(u, now - 30 * 60000,
                                                                     "save", 2, "e2")])
    p.flush()
    s.wait_visible(u, 2)
    r = s.get(u)
    assert list(r.item_ids) == [2, 11]
    t2 = mark()

    a1 = s.get(u, as_of_ms=t1, include_provenance=True)
    assert list(a1.item_ids) == [1] and list(a1.timestamps_ms) == [now - 2 * HOUR]
    assert a1.as_of_ms == t1 and list(a1.sources) == [0]
    assert a1.stream_watermark_ms <= now - 2 * HOUR + 1000 or a1.stream_watermark_ms == 0
    a2 = s.get(u, as_of_ms=t2)
    assert list(a2.item_ids) == [2, 11] and a2.as_of_ms == t2
    assert a2.stream_watermark_ms >= a1.stream_watermark_ms
    # seqctl get --as-of: ms or ISO-8601 UTC; a bad time is a usage error
    iso = datetime.datetime.fromtimestamp(t1 / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for arg in (str(t1), iso):
        doc = json.loads(s.seqctl("get", u, "engagements", "--as-of", arg, "--json",
                                  check=True).stdout)
        assert [e["item_id"] for e in doc["events"]] == [1] and doc["as_of_ms"] == t1, arg
    assert s.seqctl("get", u, "engagements", "--as-of", "yesterday-ish").returncode == 2
    # before the data dir began: refused, naming the oldest answerable time
    with pytest.raises(grpc.RpcError) as e:
        s.get(u, as_of_ms=born - DAY)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "as_of_ms: " in e.value.details() and "oldest" in e.value.details()
    # up to a second ahead: answered as of now
    r = s.get(u, as_of_ms=now_ms() + 500)
    assert list(r.item_ids) == [2, 11] and r.as_of_ms <= now_ms()
    code, msg = refused(s, user_id=u, as_of_ms=now_ms() + 60000)
    assert code == grpc.StatusCode.INVALID_ARGUMENT

    # the batch side: G1 at l1, G2 at l2, rollback to G1 at l3
    paths = {g: build(s, g, 2) for g in (1, 2)}
    before = mark()
    load(s, 1, paths[1])
    after1 = mark()
    load(s, 2, paths[2])
    after2 = mark()
    rollback(s, 1)
    after3 = mark()

    def at(t, user=USERS[0]):
        return s.get(user, as_of_ms=t, since_ms=A, until_ms=B, include_provenance=True)

    r0, r1, r2, r3 = at(before), at(after1), at(after2), at(after3)
    assert (r0.batch_generation, r0.batch_watermark_ms, list(r0.item_ids)) == (0, 0, [])
    assert r1.batch_generation == 1 and {i // 10**6 for i in r1.item_ids} == {1}
    assert set(r1.generations) == {1} and r1.batch_watermark_ms == B
    assert r2.batch_generation == 2 and {i // 10**6 for i in r2.item_ids} == {2}
    assert r3.batch_generation == 1 and {i // 10**6 for i in r3.item_ids} == {1}
    now_r = s.get(USERS[0], since_ms=A, until_ms=B)
    assert list(now_r.item_ids) == list(r3.item_ids)
    # the gap at T: before the load all of [T - retention, T - H), then less
    assert r0.completeness_gap_ms == 89 * DAY
    assert r1.completeness_gap_ms == 89 * DAY - (B - A)

    # per-entry T in one BatchGetSequences call
    req = pb().BatchGetSequencesRequest(requests=[
        pb().GetSequenceRequest(user_id=USERS[0], sequence="engagements", as_of_ms=t,
                                since_ms=A, until_ms=B) for t in (before, after2, 0)])
    rs = s.stub().BatchGetSequences(req, timeout=30).responses
    assert [x.batch_generation for x in rs] == [0, 2, 1]
    assert rs[0].as_of_ms == before and rs[1].as_of_ms == after2 and rs[2].as_of_ms >= after3
    s.kill()


def test_as_of_off_with_history_zero(seqd_factory):
    s = seqd_factory(args=["--history-ms", "0"])
    code, msg = refused(s, as_of_ms=now_ms() - 1000)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "--history-ms 0" in msg
    assert len(s.get(1).item_ids) == 0  # as_of_ms 0 is always answered


def test_stream_watermark_as_of_survives_restart(seqd_factory):
    """stream_watermark_ms as of T is the newest event time applied by T, also after a
    SIGTERM restart on the same data dir: the series is stored with the data ('m' "wmh")
    and read back at start (without that, T before the restart got the first value seen
    after it, here the newer w2)."""
    s = seqd_factory()
    u = new_user()
    now = now_ms()
    p = s.producer()
    w1, w2 = now - 2 * HOUR, now - HOUR
    p.events([make_event(u, w1, "click", 1, "w1")])
    s.wait_visible(u, 1)
    poll(lambda: s.get(u).stream_watermark_ms == w1, "the stream watermark at w1")
    t1 = mark()
    assert s.get(u, as_of_ms=t1).stream_watermark_ms == w1
    # the stored series keeps the last change of each second: change it in a later one
    poll(lambda: now_ms() // 1000 > t1 // 1000, "the next second")
    p.events([make_event(u, w2, "click", 2, "w2")])
    s.wait_visible(u, 2)
    poll(lambda: s.get(u).stream_watermark_ms == w2, "the stream watermark at w2")
    t2 = mark()
    before = [s.get(u, as_of_ms=t).stream_watermark_ms for t in (t1, t2)]
    assert before == [w1, w2]

    assert s.stop() == 0
    s.start()
    after = [s.get(u, as_of_ms=t).stream_watermark_ms for t in (t1, t2)]
    assert after == before
    assert s.get(u).stream_watermark_ms == w2
    s.kill()
