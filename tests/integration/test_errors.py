"""gRPC error statuses: every bad request gets the documented code and a message, and
the server keeps serving afterwards."""
import grpc
import pytest

from helpers import new_user, now_ms, pb, stubs
from h2raw import H2Conn

GET = "/seqd.v1.SequenceService/GetSequence"


def code_of(fn, *a, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*a, **kw)
    return e.value.code(), e.value.details()


def test_unknown_sequence_not_found(server):
    code, msg = code_of(server.get, 1, "no-such-sequence")
    assert code == grpc.StatusCode.NOT_FOUND
    assert "no-such-sequence" in msg


def test_since_after_until_invalid(server):
    code, msg = code_of(server.get, 1, since_ms=2000, until_ms=1000)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg


def test_equal_window_is_empty_ok(server):
    r = server.get(1, since_ms=1000, until_ms=1000)
    assert len(r.timestamps_ms) == 0


def test_undeclared_type_invalid(server):
    code, msg = code_of(server.get, 1, "short", event_types=["click", "save"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "save" in msg


def test_garbage_request_bytes_invalid(server):
    code, _ = code_of(server.raw_call, GET, b"\xff\xff\xff\xff")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # the server is unharmed
    assert server.get(1).user_id == 1


def test_unknown_method_unimplemented(server):
    code, _ = code_of(server.raw_call, "/seqd.v1.SequenceService/Nope", b"")
    assert code == grpc.StatusCode.UNIMPLEMENTED
    code, _ = code_of(server.raw_call, "/other.Service/GetSequence", b"")
    assert code == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("timeout,status", [("1n", 4), ("100S", 0), ("1H", 0)])
def test_deadline_from_grpc_timeout(server, timeout, status):
    """The server itself answers an expired deadline (grpc-timeout of 1ns cannot be met)
    with DEADLINE_EXCEEDED; a generous one is served. (grpcio's own client timer is not
    used here: with a tiny timeout the answer would depend on who is faster.)"""
    req = pb().GetSequenceRequest(user_id=1, sequence="engagements").SerializeToString()
    with H2Conn(server.grpc) as c:
        got, msg, _ = c.unary(GET, req, extra=[("grpc-timeout", timeout)])
    assert got == status, msg


def test_load_batch_outside_root_refused(server):
    """LoadBatch reads only under --batch-root."""
    req = pb().LoadBatchRequest(sequence="engagements", start_ms=0, end_ms=3600000,
                                generation=1, sst_paths=["/etc/passwd"])
    code, _ = code_of(server.stub().LoadBatch, req, timeout=30)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert server.get(1).user_id == 1


def test_health(server):
    h, hpb = server.health(), stubs()[2]
    assert h.Check(hpb.HealthCheckRequest(service=""), timeout=30).status == \
        hpb.HealthCheckResponse.SERVING
    assert h.Check(hpb.HealthCheckRequest(service="seqd.v1.SequenceService"),
                   timeout=30).status == hpb.HealthCheckResponse.SERVING
    code, _ = code_of(h.Check, hpb.HealthCheckRequest(service="no.such.Service"), timeout=30)
    assert code == grpc.StatusCode.NOT_FOUND


def test_message_limits_resource_exhausted(seqd_factory):
    s = seqd_factory(args=["--max-message-bytes", "1024"])
    u, t = new_user(), now_ms() - 60000
    s.producer().events([dict(user_id=u, time_ms=t - i, event_type="click", item_id=1000 + i,
                              event_id="big-%d" % i, attributes={"dwell_ms": i})
                         for i in range(200)])
    # the oldest event, produced last, is visible: all 200 are applied (small responses fit)
    s.wait_visible(u, 1, until_ms=t - 198)
    code, _ = code_of(s.get, u)  # 200 events with two columns: far above 1024 bytes
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # an oversized request too
    code, _ = code_of(s.get, u, "x" * 2000)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(s.get(u, max_events=1).item_ids) == 1
