"""What a client and an operator of a real Kafka need before a cluster: GetDefinition over
gRPC (the definition served and the fingerprint `seqctl build` records), --kafka-config
(applied, and refused at start naming the file's bad property), and seqctl produce
placing each user's events on Kafka's murmur2 partition."""
import json
import os
import sys

import pytest

import helpers

sys.path.insert(0, os.path.join(helpers.SOURCE, "clients", "python"))
from seqd_client.partition import partition_of_user  # noqa: E402


def test_get_definition_matches_status_and_build(seqd_factory, tmp_path):
    s = seqd_factory()
    pb = helpers.pb()
    r = s.stub().GetDefinition(pb.GetDefinitionRequest(), timeout=30)
    assert json.loads(r.definition_json) == s.status()["definition"]
    assert len(r.fingerprint) == 16
    # the fingerprint seqctl build records for the same definition
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"user_id": 1, "event_time_ms": 3600000, "event_type": "click",
                               "item_id": 1}) + "\n")
    out = tmp_path / "out"
    b = s.seqctl("build", "--definition", s.definition_path, "--sequence", "engagements",
                 "--start-ms", 0, "--end-ms", 7200000, "--generation", 1, "--out", out, inp)
    assert b.returncode == 0, b.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"] == r.fingerprint


def test_kafka_config_applied(seqd_factory, tmp_path):
    conf = tmp_path / "kafka.conf"
    conf.write_text("# a comment\nclient.id = seqd-under-test\nsocket.timeout.ms=20000\n")
    s = seqd_factory(args=["--kafka-config", str(conf)])
    u = helpers.new_user()
    s.producer().events([dict(user_id=u, time_ms=helpers.now_ms() - 1000, event_type="click",
                              item_id=5)])
    s.wait_item(u, 5)


@pytest.mark.parametrize("text,want", [
    (None, "No such file"),
    ("client.id=x\nno.such.thing=1\n", ":2: no.such.thing"),
    ("group.id=other\n", "group.id is set by seqd itself (use --group)"),
    ("partitioner=consistent_random\n", "partitioner is set by seqd itself"),
    ("group.instance.id=x\n", "use --instance-id"),
    ("enable.auto.commit=true\n", "enable.auto.commit is set by seqd itself"),
    ("bootstrap.servers=127.0.0.1:1\n", "use --brokers"),
])
def test_kafka_config_refused(seqd_factory, tmp_path, text, want):
    conf = tmp_path / "kafka.conf"
    if text is not None:
        conf.write_text(text)
    s = seqd_factory(args=["--kafka-config", str(conf)], expect_ready=False)
    assert s.wait_exit() == 2
    err = s.stderr_text()
    assert want in err and "kafka.conf" in err, err


def test_produce_places_users_by_murmur2(seqd_factory, tmp_path):
    from confluent_kafka import Consumer, TopicPartition
    s = seqd_factory()
    users = list(range(1, 41))
    lines = [json.dumps({"user_id": u, "event_time_ms": helpers.now_ms() - 1000,
                         "event_type": "click", "item_id": u}) for u in users]
    r = s.seqctl("produce", "-", input="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    c = Consumer({"bootstrap.servers": s.brokers, "group.id": "t", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("seqd.events", p, 0) for p in range(8)])
        seen = {}
        def read():
            for m in c.consume(100, 0.5):
                if not m.error():
                    seen[int(m.key())] = m.partition()
            return len(seen) >= len(users)
        helpers.poll(read, "every produced event read back")
    finally:
        c.close()
    for u in users:
        assert seen[u] == partition_of_user(u, 8), u
