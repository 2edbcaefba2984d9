"""--event-format confluent-protobuf: Kafka values in the Confluent protobuf serializer's
framing (magic byte 0, 4-byte schema id, zigzag-varint message indexes, then a
seqd.v1.Event), produced by python3-confluent-kafka with the frame built by hand, and by
`seqctl produce --format confluent-protobuf`. Bad framing is malformed: counted, kept
aside, and the partition goes on."""
import json
import struct

import pytest

from helpers import make_event, new_user, now_ms

SENTINEL = 888888


def zigzag(n):
    v = (n << 1) ^ (n >> 31)
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def frame(event, schema_id=1, indexes=None):
    """Confluent framing; indexes None = [0] written as the single byte 0."""
    idx = b"\x00" if indexes is None else zigzag(len(indexes)) + b"".join(
        zigzag(i) for i in indexes)
    return b"\x00" + struct.pack(">I", schema_id) + idx + event.SerializeToString()


@pytest.fixture(scope="module")
def cserver(tmp_path_factory, stubs):
    import helpers
    s = helpers.Seqd(str(tmp_path_factory.mktemp("seqd")),
                     args=["--event-format", "confluent-protobuf"])
    s.start()
    yield s
    s.kill()


def send(server, user, values):
    p = server.producer()
    for v in values:
        p.raw(str(user).encode(), v)
    p.raw(str(user).encode(), frame(make_event(user, now_ms() - 1000, "click", SENTINEL,
                                               "sentinel-%d" % user)))
    p.flush()
    server.wait_item(user, SENTINEL)


def test_framed_values_are_applied(cserver):
    u, t = new_user(), now_ms() - 60000
    send(cserver, u, [frame(make_event(u, t, "click", 1, "c1")),
                      frame(make_event(u, t - 1, "save", 2, "c2"), schema_id=123456,
                            indexes=[0]),
                      frame(make_event(u, t - 2, "click", 3, "c3"), indexes=[2, 5])])
    assert list(cserver.get(u).item_ids) == [SENTINEL, 1, 2, 3]
    assert cserver.status()["event_format"] == "confluent-protobuf"


def test_bad_framing_is_malformed(cserver):
    u, t = new_user(), now_ms() - 60000
    ev = make_event(u, t, "click", 9, "bad")
    before = cserver.counts()["malformed"]
    send(cserver, u, [ev.SerializeToString(),              # no magic byte
                      b"\x00\x00\x00",                       # truncated header
                      b"\x00\x00\x00\x00\x01\x04\x02",       # count 2, one index
                      b"\x01" + frame(ev)[1:]])              # wrong magic
    assert cserver.counts()["malformed"] - before == 4
    assert list(cserver.get(u).item_ids) == [SENTINEL]
    assert cserver.metric("seqd_events_malformed_total") == cserver.counts()["malformed"]


def test_seqctl_produce_confluent(cserver, tmp_path):
    u, t = new_user(), now_ms() - 30000
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps({"user_id": u, "event_time_ms": t, "event_type": "click",
                             "item_id": 55, "event_id": "p1"}) + "\n")
    r = cserver.seqctl("produce", "--format", "confluent-protobuf", str(f), check=True)
    assert "delivered 1 events" in r.stdout
    assert list(cserver.wait_visible(u, 1).item_ids) == [55]


def test_plain_server_counts_framed_values_malformed(server):
    """The default format (plain protobuf) does not unframe: a framed value fails to
    decode there. The flag is what makes them readable."""
    u = new_user()
    before = server.counts()["malformed"]
    p = server.producer()
    p.raw(str(u).encode(), frame(make_event(u, now_ms() - 1000, "click", 4, "f1")))
    p.raw(str(u).encode(), make_event(u, now_ms() - 1000, "click", SENTINEL, "s").SerializeToString())
    p.flush()
    server.wait_item(u, SENTINEL)
    assert server.counts()["malformed"] - before == 1
