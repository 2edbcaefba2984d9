"""The streaming path under bad input: malformed Kafka messages are counted (in /status
and /metrics) and skipped, unknown types are counted as skipped, and later good events
of the same partition are still applied."""
import json

import grpc
import pytest

from helpers import HOUR, make_event, new_user, now_ms

SENTINEL = 777777


def send_then_sentinel(server, user, values):
    """Raw values keyed by user (one partition), then a good event; waits for it."""
    p = server.producer()
    for v in values:
        p.raw(str(user).encode(), v)
    good = make_event(user, now_ms() - 1000, "click", SENTINEL, "good-%d" % user)
    p.raw(str(user).encode(), good.SerializeToString())
    p.flush()
    server.wait_item(user, SENTINEL)


def deltas(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def check_metrics_agree(server):
    c = server.counts()
    assert server.metric("seqd_events_malformed_total") == c["malformed"]
    assert server.metric("seqd_events_skipped_unknown_type_total") == c["skipped_unknown_type"]


def test_undecodable_protobuf_counted_and_skipped(server):
    u, before = new_user(), server.counts()
    send_then_sentinel(server, u, [b"\xff\xff\xff\xff", b"\x0a\x05ab"])
    d = deltas(before, server.counts())
    assert d["malformed"] == 2
    assert list(server.get(u).item_ids) == [SENTINEL]
    check_metrics_agree(server)


def test_missing_user_id_is_malformed(server):
    u, before = new_user(), server.counts()
    ev = make_event(0, now_ms() - 5000, "click", 5, "no-user")
    send_then_sentinel(server, u, [ev.SerializeToString()])
    assert deltas(before, server.counts())["malformed"] == 1
    # and user 0 cannot even be asked for: "not set" is refused, never an empty answer
    with pytest.raises(grpc.RpcError) as e:
        server.get(0)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_far_future_event_is_kept_aside_and_counted_apart(server):
    u, before = new_user(), server.counts()
    m_before = server.metric("seqd_events_future_total")
    ev = make_event(u, now_ms() + HOUR, "click", 5, "future")
    send_then_sentinel(server, u, [ev.SerializeToString()])
    d = deltas(before, server.counts())
    assert d["future"] == 1 and d["malformed"] == 0
    assert server.metric("seqd_events_future_total") == m_before + 1
    assert list(server.get(u).item_ids) == [SENTINEL]


def test_near_future_within_max_future_is_kept(server):
    u = new_user()
    ev = make_event(u, now_ms() + 60000, "click", 6, "soon")
    send_then_sentinel(server, u, [ev.SerializeToString()])
    assert list(server.get(u).item_ids) == [6, SENTINEL]


def test_unknown_type_skipped_not_malformed(server):
    u, before = new_user(), server.counts()
    ev = make_event(u, now_ms() - 5000, "purchase", 5, "unknown-type")
    send_then_sentinel(server, u, [ev.SerializeToString()])
    d = deltas(before, server.counts())
    assert d["skipped_unknown_type"] == 1
    assert d["malformed"] == 0
    assert list(server.get(u).item_ids) == [SENTINEL]
    check_metrics_agree(server)


def test_json_event_format(seqd_factory):
    s = seqd_factory(args=["--event-format", "json"])
    u, t = new_user(), now_ms() - 10000
    p = s.producer()
    key = str(u).encode()
    good = {"user_id": str(u), "event_time_ms": t, "event_type": "view", "item_id": "12",
            "event_id": "j-1", "attributes": {"dwell_ms": 1200, "position": 2}}
    for bad in [b"{not json", b"[1,2]", json.dumps({"user_id": u, "event_type": "click"}).encode(),
                make_event(u, t, "click", 5, "pb").SerializeToString()]:
        p.raw(key, bad)
    p.raw(key, json.dumps(good).encode())
    p.flush()
    r = s.wait_visible(u, 1)
    assert list(r.item_ids) == [12] and list(r.timestamps_ms) == [t]
    assert [list(c.values) for c in r.columns] == [[1200.0], [2.0]]
    assert s.counts()["malformed"] == 4
    assert s.metric("seqd_events_malformed_total") == 4
