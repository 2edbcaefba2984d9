"""Smoke test of seqd's glue, end to end: start on free ports with the embedded Kafka
cluster, produce protobuf events with a real Kafka client, read them back with a real
gRPC client, check /status, /readyz, /metrics (promtool) and a clean SIGTERM stop."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

SEQD = os.environ.get("SEQD_BIN", "build/seqd")
SOURCE = os.environ.get("SEQD_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))

DEFINITION = {
    "bucket_ms": 3600000,
    "freshness_horizon_ms": 86400000,
    "sequences": [{
        "name": "engagements",
        "event_types": ["click", "save", "view"],
        "max_length": 1000,
        "retention_ms": 7776000000,
        "columns": ["dwell_ms", {"name": "position", "default": -1}],
        "filters": [{"attribute": "dwell_ms", "op": ">=", "value": 500, "event_types": ["view"]}],
    }],
}


@pytest.fixture(scope="module")
def pb():
    """(seqd_pb2, health_pb2): the suite's shared generated modules (helpers.stubs), so
    that the descriptors are registered once per process."""
    from helpers import stubs
    seqd_pb2, _, health_pb2, _ = stubs()
    return seqd_pb2, health_pb2


class Server:
    def __init__(self, tmp, extra=("--threads", "2"), prefix=()):
        self.tmp = tmp
        with open(os.path.join(tmp, "def.json"), "w") as f:
            json.dump(DEFINITION, f)
        self.proc = subprocess.Popen(
            [*prefix, SEQD, "--definition", os.path.join(tmp, "def.json"), "--data-dir", os.path.join(tmp, "data"),
             "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "seqd.log"), "w"), text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("seqd ready "), line
        fields = dict(kv.split("=", 1) for kv in line.split()[2:])
        self.grpc, self.admin, self.brokers = fields["grpc"], fields["admin"], fields["brokers"]

    def http(self, path):
        try:
            with urllib.request.urlopen("http://%s%s" % (self.admin, path), timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    tmp = tempfile.mkdtemp(prefix="seqd-smoke-")
    s = Server(tmp)
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()
    shutil.rmtree(tmp)


def produce(brokers, values):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": brokers})
    for key, value in values:
        p.produce("seqd.events", key=key, value=value)
    assert p.flush(10) == 0


def wait_for(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def unary(channel, path, req, resp_cls):
    return channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=resp_cls.FromString)(req, timeout=5)


def test_status_and_probes(server):
    code, body = server.http("/status")
    assert code == 200
    st = json.loads(body)
    assert st["grpc"] == server.grpc and st["admin"] == server.admin and st["brokers"] == server.brokers
    assert st["topic"] == "seqd.events" and st["group"] == "seqd" and st["embedded_kafka"] is True
    assert st["definition"]["sequences"][0]["name"] == "engagements"
    assert len(st["stream"]["partitions"]) == 8
    assert st["sequences"][0]["batch_generation"] == 0
    assert server.http("/healthz") == (200, "ok\n")
    assert server.http("/nope")[0] == 404
    wait_for(lambda: server.http("/readyz")[0] == 200)


def test_produce_then_read(server, pb):
    import grpc
    seqd_pb2, health_pb2 = pb
    now = int(time.time() * 1000)
    events = []
    for i in range(5):
        ev = seqd_pb2.Event(user_id=42, event_time_ms=now - 1000 * (5 - i), event_type="click",
                            item_id=100 + i, event_id="e%d" % i)
        ev.attributes["dwell_ms"] = 10.0 * i
        events.append((b"42", ev.SerializeToString()))
    filtered = seqd_pb2.Event(user_id=42, event_time_ms=now, event_type="view", item_id=9, event_id="v")
    filtered.attributes["dwell_ms"] = 1  # below the filter's 500
    unknown = seqd_pb2.Event(user_id=42, event_time_ms=now, event_type="buy", item_id=9, event_id="u")
    events += [(b"42", filtered.SerializeToString()), (b"42", unknown.SerializeToString()),
               (b"42", b"\xff\xff\xff")]
    produce(server.brokers, events)

    def counts():
        c = json.loads(server.http("/status")[1])["counts"]
        return c if c["events_applied"] + c["malformed"] + c["filtered"] + c["skipped_unknown_type"] == 8 else None
    c = wait_for(counts)
    assert (c["events_applied"], c["malformed"], c["filtered"], c["skipped_unknown_type"]) == (5, 1, 1, 1)
    wait_for(lambda: server.http("/readyz")[0] == 200)

    with grpc.insecure_channel(server.grpc) as ch:
        r = unary(ch, "/seqd.v1.SequenceService/GetSequence",
                  seqd_pb2.GetSequenceRequest(user_id=42, sequence="engagements"), seqd_pb2.GetSequenceResponse)
        assert list(r.item_ids) == [104, 103, 102, 101, 100]
        assert list(r.timestamps_ms) == [now - 1000 * k for k in range(1, 6)]
        assert [c.name for c in r.columns] == ["dwell_ms", "position"]
        assert list(r.columns[0].values) == [40.0, 30.0, 20.0, 10.0, 0.0]
        assert list(r.columns[1].values) == [-1.0] * 5
        assert r.stream_watermark_ms == now - 1000
        b = unary(ch, "/seqd.v1.SequenceService/BatchGetSequences",
                  seqd_pb2.BatchGetSequencesRequest(requests=[
                      seqd_pb2.GetSequenceRequest(user_id=42, sequence="engagements", max_events=2),
                      seqd_pb2.GetSequenceRequest(user_id=43, sequence="engagements")]),
                  seqd_pb2.BatchGetSequencesResponse)
        assert [list(x.item_ids) for x in b.responses] == [[104, 103], []]
        with pytest.raises(grpc.RpcError) as e:
            unary(ch, "/seqd.v1.SequenceService/GetSequence",
                  seqd_pb2.GetSequenceRequest(user_id=42, sequence="nope"), seqd_pb2.GetSequenceResponse)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert e.value.details() == "unknown sequence 'nope'"
        with pytest.raises(grpc.RpcError) as e:
            unary(ch, "/seqd.v1.SequenceService/BatchGetSequences",
                  seqd_pb2.BatchGetSequencesRequest(requests=[
                      seqd_pb2.GetSequenceRequest(user_id=1, sequence="engagements"),
                      seqd_pb2.GetSequenceRequest(user_id=1, sequence="engagements", since_ms=5, until_ms=4)]),
                  seqd_pb2.BatchGetSequencesResponse)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details() == "requests[1]: since_ms (5) > until_ms (4)"
        h = unary(ch, "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(service=""),
                  health_pb2.HealthCheckResponse)
        assert h.status == health_pb2.HealthCheckResponse.SERVING


def test_metrics_valid(server):
    code, body = server.http("/metrics")
    assert code == 200
    assert 'seqd_grpc_requests_total{method="GetSequence",code="OK"}' in body
    assert "seqd_events_applied_total 5" in body
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=body, text=True, capture_output=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_external_brokers_json_topic_created_later(server, pb):
    """--brokers (here: the first server's embedded cluster, as `seqctl broker` would
    give), JSON events, and a topic that does not exist yet when seqd starts."""
    import grpc
    seqd_pb2, _ = pb
    tmp = tempfile.mkdtemp(prefix="seqd-ext-")
    s2 = None
    try:
        s2 = Server(tmp, ["--threads", "2", "--brokers", server.brokers, "--topic", "seqd.json", "--event-format", "json"])
        assert s2.brokers == server.brokers
        st = json.loads(s2.http("/status")[1])
        assert st["embedded_kafka"] is False and st["event_format"] == "json" and st["topic"] == "seqd.json"
        now = int(time.time() * 1000)
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": server.brokers})
        p.produce("seqd.json", key=b"7", value=json.dumps(
            {"user_id": "7", "event_time_ms": now, "event_type": "save", "item_id": 11,
             "attributes": {"position": 3}}).encode())
        p.produce("seqd.json", key=b"7", value=b"{not json")
        assert p.flush(10) == 0

        def got():
            with grpc.insecure_channel(s2.grpc) as ch:
                r = unary(ch, "/seqd.v1.SequenceService/GetSequence",
                          seqd_pb2.GetSequenceRequest(user_id=7, sequence="engagements"),
                          seqd_pb2.GetSequenceResponse)
            return r if list(r.item_ids) == [11] else None
        r = wait_for(got, timeout=30)
        assert list(r.event_types) == [1] and list(r.columns[1].values) == [3.0]
        # the watermark is published after the write that made the event visible (a lower
        # bound: it never names a time whose events are not readable), so a read in
        # between shows the event with the watermark before it
        r = wait_for(lambda: (lambda r: r if r.stream_watermark_ms == now else None)(got()), timeout=30)
        assert r.stream_watermark_ms == now
        c = wait_for(lambda: json.loads(s2.http("/status")[1])["counts"]["malformed"] == 1)
        assert c
    finally:
        if s2:
            assert s2.stop() == 0
        shutil.rmtree(tmp)


def test_sigterm_then_restart_resumes(server, pb):
    """A clean stop exits 0; a restart on the same data and log re-reads nothing twice."""
    assert server.stop() == 0
    # The embedded log died with the process: the restart starts at the empty log's
    # beginning and the stored events are still served.
    s2 = Server(server.tmp)
    try:
        c = json.loads(s2.http("/status")[1])
        assert c["counts"]["events_applied"] == 0
        import grpc
        seqd_pb2, _ = pb
        with grpc.insecure_channel(s2.grpc) as ch:
            r = unary(ch, "/seqd.v1.SequenceService/GetSequence",
                      seqd_pb2.GetSequenceRequest(user_id=42, sequence="engagements"), seqd_pb2.GetSequenceResponse)
            assert list(r.item_ids) == [104, 103, 102, 101, 100]
        wait_for(lambda: s2.http("/readyz")[0] == 200)
    finally:
        assert s2.stop() == 0


def test_bad_command_line_exits_2(tmp_path):
    r = subprocess.run([SEQD, "--definition"], capture_output=True, text=True)
    assert r.returncode == 2 and "--definition" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"bucket_ms": 3600000, "freshness_horizon_ms": 86400000, "sequences": '
                   '[{"name": "s", "event_types": ["a"], "max_length": 0, "retention_ms": 3600000}]}')
    r = subprocess.run([SEQD, "--definition", str(bad), "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "max_length" in r.stderr


def grpc_workers(pid):
    names = []
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
            names.append(f.read().strip())
    return sorted(n for n in names if n.startswith("seqd-grpc"))


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_default_threads_are_the_cpus_it_may_run_on(tmp_path):
    """--threads defaults to the CPUs of seqd's affinity mask, as nproc(1) counts them: a
    seqd started under `taskset -c 0` runs one gRPC worker, not one per core of the
    machine (they would time-slice one core); --threads still overrides it."""
    cases = [((), (), len(os.sched_getaffinity(0))),
             (("taskset", "-c", "0"), (), 1),
             (("taskset", "-c", "0"), ("--threads", "3"), 3)]
    for i, (prefix, extra, want) in enumerate(cases):
        d = tmp_path / str(i)
        d.mkdir()
        s = Server(str(d), extra=extra, prefix=prefix)
        try:
            assert grpc_workers(s.proc.pid) == ["seqd-grpc%d" % k for k in range(want)], (prefix, extra)
        finally:
            assert s.stop() == 0
