"""GetSequence semantics over the streaming path: order, cuts, trimming, retention,
columns, filters, dedup, corrections, derived ids, late events, BatchGetSequences."""
import math

import grpc
import pytest

from helpers import DAY, HOUR, column, derived_event_id, new_user, now_ms, pb

SENTINEL = 999999


def produce_then_sentinel(server, events, user, sequence="engagements"):
    """Produces events, then a click that marks the end: same key, same partition, so
    once the sentinel is visible every earlier event of the user has been applied."""
    t = max(e["time_ms"] for e in events) if events else now_ms() - 60000
    server.producer().events(events + [dict(user_id=user, time_ms=t + 1, event_type="click",
                                            item_id=SENTINEL, event_id="sentinel-%d" % user)])
    server.wait_item(user, SENTINEL, sequence)


def items(resp, drop_sentinel=True):
    return [i for i in resp.item_ids if not (drop_sentinel and i == SENTINEL)]


def test_newest_first_ties_by_event_id_descending(server):
    u, t = new_user(), now_ms() - 60000
    server.producer().events([
        dict(user_id=u, time_ms=t, event_type="click", item_id=10, event_id="x-2"),
        dict(user_id=u, time_ms=t, event_type="click", item_id=20, event_id="x-9"),
        dict(user_id=u, time_ms=t, event_type="click", item_id=30, event_id="x-5"),
        dict(user_id=u, time_ms=t + 1000, event_type="save", item_id=40, event_id="y"),
        dict(user_id=u, time_ms=t - 1000, event_type="click", item_id=50, event_id="z"),
    ])
    r = server.wait_visible(u, 5)
    assert list(r.item_ids) == [40, 20, 30, 10, 50]
    assert list(r.timestamps_ms) == [t + 1000, t, t, t, t - 1000]
    assert list(r.event_types) == [1, 0, 0, 0, 0]  # position in the declared list
    assert r.user_id == u and r.sequence == "engagements"
    assert r.stream_watermark_ms > 0
    assert r.batch_generation == 0 and r.batch_watermark_ms == 0


@pytest.fixture(scope="module")
def cut_user(server):
    """8 events in `short` (max_length 5): items 100..107 at t0+i s, click/view alternating."""
    u, t0 = new_user(), now_ms() - 600000
    evs = [dict(user_id=u, time_ms=t0 + i * 1000, event_type="click" if i % 2 == 0 else "view",
                item_id=100 + i, event_id="c-%d" % i) for i in range(8)]
    server.producer().events(evs)
    server.wait_visible(u, 5, "short")
    server.wait_item(u, 107, "short")
    return u, t0


@pytest.mark.parametrize("kw,expected", [
    ({}, [107, 106, 105, 104, 103]),                     # max_length cuts first
    ({"event_types": ["click"]}, [106, 104]),            # type filter selects from the cut
    ({"event_types": ["click"], "max_events": 1}, [106]),
    ({"max_events": 2}, [107, 106]),
    ({"since": 1}, [107, 106, 105, 104, 103]),           # window before the cut: no effect
    ({"since": 4}, [107, 106, 105, 104]),                # since inclusive
    ({"until": 6}, [105, 104, 103]),                     # until exclusive
    ({"since": 4, "until": 6}, [105, 104]),
    ({"since": 4, "until": 4}, []),                      # empty window is OK
    ({"since": 3, "until": 8, "event_types": ["view"], "max_events": 1}, [107]),
])
def test_order_of_cuts(server, cut_user, kw, expected):
    u, t0 = cut_user
    kw = dict(kw)
    if "since" in kw:
        kw["since_ms"] = t0 + kw.pop("since") * 1000
    if "until" in kw:
        kw["until_ms"] = t0 + kw.pop("until") * 1000
    r = server.get(u, "short", **kw)
    assert list(r.item_ids) == expected
    assert len(r.timestamps_ms) == len(r.event_types) == len(expected)


def test_max_length_trims_to_newest(server):
    u, t = new_user(), now_ms() - 3600000
    server.producer().events([dict(user_id=u, time_ms=t + i, event_type="click", item_id=i,
                                   event_id="m-%d" % i) for i in range(12)])
    server.wait_item(u, 11, "short")
    r = server.get(u, "short")
    assert list(r.item_ids) == [11, 10, 9, 8, 7]
    assert len(server.wait_visible(u, 12).item_ids) == 12  # the long sequence keeps all


def test_retention(server):
    u, now = new_user(), now_ms()
    server.producer().events([
        dict(user_id=u, time_ms=now - 8 * DAY, event_type="click", item_id=1, event_id="r1"),
        dict(user_id=u, time_ms=now - 6 * DAY, event_type="click", item_id=2, event_id="r2"),
        dict(user_id=u, time_ms=now - 60000, event_type="click", item_id=3, event_id="r3"),
    ])
    r = server.wait_visible(u, 3)  # 90 days: all three
    assert list(r.item_ids) == [3, 2, 1]
    assert list(server.get(u, "short").item_ids) == [3, 2]  # 7 days: the 8-day-old one is out


def test_columns_defaults_and_example_filter(server):
    u, t = new_user(), now_ms() - 120000
    evs = [
        dict(user_id=u, time_ms=t + 1, event_type="click", item_id=1, event_id="a1",
             attributes={"dwell_ms": 1200, "position": 3, "ignored": 5}),
        dict(user_id=u, time_ms=t + 2, event_type="click", item_id=2, event_id="a2"),
        dict(user_id=u, time_ms=t + 3, event_type="view", item_id=3, event_id="a3",
             attributes={"dwell_ms": 800}),
        dict(user_id=u, time_ms=t + 4, event_type="view", item_id=4, event_id="a4",
             attributes={"dwell_ms": 499}),       # fails the filter: dropped
        dict(user_id=u, time_ms=t + 5, event_type="view", item_id=5, event_id="a5"),  # no dwell
        dict(user_id=u, time_ms=t + 6, event_type="save", item_id=6, event_id="a6",
             attributes={"position": 7}),
        dict(user_id=u, time_ms=t + 7, event_type="view", item_id=7, event_id="a7",
             attributes={"dwell_ms": 500}),       # boundary: >= holds
    ]
    produce_then_sentinel(server, evs, u)
    r = server.get(u)
    assert items(r) == [7, 6, 3, 2, 1]
    assert [c.name for c in r.columns] == ["dwell_ms", "position"]
    dwell, pos = column(r, "dwell_ms")[1:], column(r, "position")[1:]  # skip the sentinel
    assert dwell[0] == 500 and math.isnan(dwell[1]) and dwell[2] == 800
    assert math.isnan(dwell[3]) and dwell[4] == 1200
    assert pos == [-1, 7, -1, -1, 3]
    # the short sequence has no filter: the dropped views are there
    assert [i for i in server.get(u, "short").item_ids if i != SENTINEL] == [7, 5, 4, 3]


def test_redelivered_event_is_deduplicated(server):
    u, t = new_user(), now_ms() - 60000
    ev = dict(user_id=u, time_ms=t, event_type="click", item_id=5, event_id="dup-1")
    produce_then_sentinel(server, [ev, ev, dict(ev)], u)
    assert items(server.get(u)) == [5]


def test_correction_moves_the_event(server):
    u, t = new_user(), now_ms() - 60000
    produce_then_sentinel(server, [
        dict(user_id=u, time_ms=t, event_type="click", item_id=5, event_id="fix"),
        dict(user_id=u, time_ms=t - 30000, event_type="click", item_id=5, event_id="other"),
        dict(user_id=u, time_ms=t - 60000, event_type="save", item_id=6, event_id="fix"),
    ], u)
    r = server.get(u)
    assert items(r) == [5, 6]
    assert list(r.timestamps_ms)[1:] == [t - 30000, t - 60000]
    assert list(r.event_types)[1:] == [0, 1]


def test_derived_event_id(server):
    u, t = new_user(), now_ms() - 60000
    produce_then_sentinel(server, [
        dict(user_id=u, time_ms=t, event_type="click", item_id=5),
        dict(user_id=u, time_ms=t, event_type="click", item_id=5),   # same four fields
        dict(user_id=u, time_ms=t, event_type="click", item_id=6),   # another item
        dict(user_id=u, time_ms=t, event_type="save", item_id=5),    # another type
    ], u)
    r = server.get(u)
    assert sorted(items(r)) == [5, 5, 6]
    assert sorted(list(r.event_types)[1:]) == [0, 0, 1]


def test_derived_event_id_is_the_documented_function(server):
    """An explicit id equal to the README's derivation for another event is that event's
    id: the second copy replaces the first (same path, last applied wins)."""
    u, t = new_user(), now_ms() - 60000
    produce_then_sentinel(server, [
        dict(user_id=u, time_ms=t, event_type="click", item_id=5),
        dict(user_id=u, time_ms=t - 10, event_type="save", item_id=6,
             event_id=derived_event_id(u, t, "click", 5)),
    ], u)
    r = server.get(u)
    assert items(r) == [6]
    assert list(r.timestamps_ms)[1:] == [t - 10]


def test_late_events_placed_by_event_time(server):
    u, t = new_user(), now_ms() - 60000
    produce_then_sentinel(server, [
        dict(user_id=u, time_ms=t, event_type="click", item_id=1, event_id="l1"),
        dict(user_id=u, time_ms=t - 3 * HOUR, event_type="click", item_id=2, event_id="l2"),
        dict(user_id=u, time_ms=t - 3 * DAY, event_type="click", item_id=3, event_id="l3"),
        dict(user_id=u, time_ms=t - 1000, event_type="click", item_id=4, event_id="l4"),
    ], u)
    r = server.get(u)
    assert items(r) == [1, 4, 2, 3]
    assert list(r.timestamps_ms)[1:] == [t, t - 1000, t - 3 * HOUR, t - 3 * DAY]


def test_unknown_user_is_ok_and_empty(server):
    r = server.get(987654321987)
    assert r.user_id == 987654321987
    assert len(r.timestamps_ms) == len(r.item_ids) == len(r.event_types) == 0
    assert all(len(c.values) == 0 for c in r.columns)


def test_batch_get_keeps_request_order(server):
    u1, u2, t = new_user(), new_user(), now_ms() - 60000
    server.producer().events([
        dict(user_id=u1, time_ms=t, event_type="click", item_id=11, event_id="b1"),
        dict(user_id=u2, time_ms=t, event_type="view", item_id=22, event_id="b2",
             attributes={"dwell_ms": 900}),
    ])
    server.wait_visible(u1, 1)
    server.wait_visible(u2, 1)
    reqs = [pb().GetSequenceRequest(user_id=u, sequence=s)
            for u, s in [(u2, "engagements"), (424242424242, "engagements"), (u1, "short"),
                         (u1, "engagements")]]
    r = server.stub().BatchGetSequences(pb().BatchGetSequencesRequest(requests=reqs), timeout=30)
    assert [(x.user_id, x.sequence) for x in r.responses] == [
        (u2, "engagements"), (424242424242, "engagements"), (u1, "short"), (u1, "engagements")]
    assert [list(x.item_ids) for x in r.responses] == [[22], [], [11], [11]]


@pytest.mark.parametrize("bad,code", [
    (dict(sequence="nope"), grpc.StatusCode.NOT_FOUND),
    (dict(sequence="engagements", since_ms=10, until_ms=5), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(sequence="short", event_types=["save"]), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_batch_get_error_names_the_entry(server, bad, code):
    reqs = [pb().GetSequenceRequest(user_id=1, sequence="engagements"),
            pb().GetSequenceRequest(user_id=1, **bad),
            pb().GetSequenceRequest(user_id=1, sequence="short")]
    with pytest.raises(grpc.RpcError) as e:
        server.stub().BatchGetSequences(pb().BatchGetSequencesRequest(requests=reqs), timeout=30)
    assert e.value.code() == code
    assert e.value.details().startswith("requests[1]: "), e.value.details()


def test_cached_read_sees_the_next_write(server):
    """A read served from the record cache, then a stream write for the same user: the
    next read shows it (the consumer's commit invalidates the cached entry)."""
    u, t = new_user(), now_ms() - 60000
    produce_then_sentinel(server, [dict(user_id=u, time_ms=t, event_type="click", item_id=1)], u)
    hits = server.metric("seqd_record_cache_hits_total")
    assert items(server.get(u)) == [1]
    assert items(server.get(u)) == [1]
    assert server.metric("seqd_record_cache_hits_total") > hits
    server.producer().events([dict(user_id=u, time_ms=t + 5, event_type="click", item_id=2)])
    r = server.wait_visible(u, 3)
    assert items(r) == [2, 1]
