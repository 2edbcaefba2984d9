"""The admin port: /metrics (valid for promtool), /healthz, /readyz, /status; the series
issue 12 added (the default process series, build info, per-partition freshness, the
completeness gap, readiness as one truth with /status and seqctl status)."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from helpers import SOURCE, make_test_definition, new_user, now_ms, poll
from test_crash import start_broker


def test_metrics_pass_promtool(server):
    u = new_user()
    server.producer().events([dict(user_id=u, time_ms=now_ms() - 1000, event_type="click",
                                   item_id=1, event_id="m1")])
    server.wait_visible(u, 1)
    code, body = server.http("/metrics")
    assert code == 200
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed")
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", [
    "seqd_events_applied_total", "seqd_events_malformed_total",
    "seqd_events_skipped_unknown_type_total", "seqd_grpc_requests_total", "seqd_up"])
def test_metrics_names(server, name):
    server.get(1)
    assert server.metric(name) >= 0


def test_requests_counted(server):
    before = server.metric("seqd_grpc_requests_total")
    for _ in range(3):
        server.get(1)
    assert server.metric("seqd_grpc_requests_total") >= before + 3


def test_applied_counter_moves(server):
    before = server.metric("seqd_events_applied_total")
    u = new_user()
    server.producer().events([dict(user_id=u, time_ms=now_ms() - 1000, event_type="click",
                                   item_id=2, event_id="m2")])
    server.wait_visible(u, 1)
    assert server.metric("seqd_events_applied_total") >= before + 1


def test_healthz_readyz(server):
    assert server.http("/healthz")[0] == 200
    assert server.http("/readyz")[0] == 200  # storage open; the empty topic is caught up


def test_unknown_path_404(server):
    assert server.http("/no-such-page")[0] == 404


def test_status_fields(server):
    u, t = new_user(), now_ms() - 1000
    server.producer().events([dict(user_id=u, time_ms=t, event_type="click", item_id=3,
                                   event_id="st")])
    server.wait_visible(u, 1)
    st = server.status()
    assert st["grpc"] == server.grpc and st["admin"] == server.admin
    assert st["brokers"] == server.brokers
    assert st["topic"] == "seqd.events" and st["group"] == "seqd"
    assert st["event_format"] == "protobuf" and st["embedded_kafka"] is True
    assert st["definition"]["sequences"][0]["name"] == "engagements"
    assert [s["name"] for s in st["definition"]["sequences"]] == \
        [s["name"] for s in make_test_definition()["sequences"]]
    stream = st["stream"]
    assert stream["watermark_ms"] >= t
    assert len(stream["partitions"]) == 8
    for p in stream["partitions"]:
        assert {"partition", "next_offset", "high_offset", "watermark_ms"} <= set(p)
    assert {"watermark_ms", "caught_up", "lag"} <= set(stream)
    seqs = {s["name"]: s for s in st["sequences"]}
    assert set(seqs) == {"engagements", "short"}
    assert seqs["engagements"]["batch_generation"] == 0
    assert seqs["engagements"]["batch_watermark_ms"] == 0
    assert {"events_applied", "malformed", "future", "skipped_unknown_type", "filtered",
            "late_batch_owned"} <= set(st["counts"])
    assert st["counts"]["events_applied"] >= 1


def samples(server, name):
    """{label value or '': value} of one metric's samples."""
    code, body = server.http("/metrics")
    assert code == 200
    out = {}
    for m in re.finditer(r"^%s(?:\{[a-z]+=\"([^\"]*)\"\})? (\S+)$" % re.escape(name), body, re.M):
        out[m.group(1) or ""] = float(m.group(2))
    assert out, "metric %s missing" % name
    return out


def test_process_series(server):
    """What every Prometheus client library exports by default, with values that only
    this process can give."""
    pid = server.proc.pid
    start = samples(server, "process_start_time_seconds")[""]
    assert time.time() - 3600 < start <= time.time()
    fds = samples(server, "process_open_fds")[""]
    assert abs(fds - len(os.listdir("/proc/%d/fd" % pid))) <= 5  # a scrape's own sockets
    rss = samples(server, "process_resident_memory_bytes")[""]
    with open("/proc/%d/statm" % pid) as f:
        statm_rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert 0.5 * statm_rss < rss < 2 * statm_rss
    assert samples(server, "process_virtual_memory_bytes")[""] >= rss
    assert samples(server, "process_cpu_seconds_total")[""] > 0
    with open("/proc/%d/limits" % pid) as f:
        soft = re.search(r"Max open files\s+(\d+)", f.read()).group(1)
    assert samples(server, "process_max_fds")[""] == float(soft)


def test_build_info_has_the_version(server):
    with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
        version = re.search(r"project\(seqd VERSION (\S+)", f.read()).group(1)
    assert samples(server, "seqd_build_info") == {version: 1.0}


def test_partition_gauges_and_gap(server):
    st = server.status()
    lags = samples(server, "seqd_partition_lag_messages")
    assert set(lags) == {str(p["partition"]) for p in st["stream"]["partitions"]}
    ages = samples(server, "seqd_partition_watermark_age_seconds")
    assert set(ages) == set(lags)
    # a quiet, caught-up partition is not stale: the consumer refreshes it every loop
    poll(lambda: max(samples(server, "seqd_partition_watermark_age_seconds").values()) < 30,
         "quiet partitions to show a small age")
    gap = samples(server, "seqd_batch_completeness_gap_seconds")
    d = make_test_definition()
    for q in d["sequences"]:  # nothing loaded: the whole [now - retention, now - H)
        assert gap[q["name"]] == pytest.approx((q["retention_ms"] - d["freshness_horizon_ms"]) / 1000,
                                               abs=120)
    assert samples(server, "seqd_ready") == {"": 1.0}


def test_readiness_is_one_truth(seqd_factory):
    """Brokers down: /readyz, /status caught_up, seqctl status, seqd_ready all say not
    ready, with the same reason; the partitions' watermark age grows meanwhile."""
    broker, brokers = start_broker()
    try:
        s = seqd_factory(brokers=brokers)
        poll(lambda: s.http("/readyz")[0] == 200, "ready")
        assert s.status()["stream"]["caught_up"] is True
        assert "caught_up yes" in s.seqctl("status", check=True).stdout
        broker.send_signal(signal.SIGUSR1)  # its broker goes down
        code, body = poll(lambda: (lambda r: r if r[0] == 503 else None)(s.http("/readyz")),
                          "not ready while the broker is down")
        stream = s.status()["stream"]
        assert stream["caught_up"] is False
        assert "unreachable" in stream["not_ready"] and brokers in stream["not_ready"]
        out = s.seqctl("status", check=True).stdout
        assert "caught_up no (kafka brokers %s unreachable)" % brokers in out, out
        assert samples(s, "seqd_ready") == {"": 0.0}
        poll(lambda: min(samples(s, "seqd_partition_watermark_age_seconds").values()) > 2,
             "the partitions' age to grow while the brokers are down")
        broker.send_signal(signal.SIGUSR2)
        poll(lambda: s.http("/readyz")[0] == 200, "ready again")
        assert s.status()["stream"]["caught_up"] is True
        poll(lambda: max(samples(s, "seqd_partition_watermark_age_seconds").values()) < 30,
             "the age back near 0")
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
