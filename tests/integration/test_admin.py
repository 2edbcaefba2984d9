"""The admin port: /metrics (valid for promtool), /healthz, /readyz, /status."""
import shutil
import subprocess

import pytest

from helpers import make_test_definition, new_user, now_ms


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
    assert {"events_applied", "malformed", "skipped_unknown_type", "filtered",
            "late_batch_owned"} <= set(st["counts"])
    assert st["counts"]["events_applied"] >= 1
