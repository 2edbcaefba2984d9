"""gRPC server reflection from a stock client: Python stubs of the reflection protos
generated here with protoc + grpc_python_plugin (Debian's grpcio has no grpc_reflection
module), the bidirectional ServerReflectionInfo stream driven by grpcio, and then what
grpcurl does: message classes built from the returned FileDescriptorProtos alone
(descriptor_pool + message_factory) to call GetSequence. Bad requests: the protocol's
error_response and the stream goes on; garbage fails the call, not the connection."""
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from h2raw import H2Conn
from helpers import new_user, now_ms

SOURCE = os.environ.get("SEQD_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.fixture(scope="module")
def refl():
    """{"v1": module, "v1alpha": module}: reflection_pb2 of each version. Generated flat,
    under distinct file names, so neither shadows the real `grpc` package nor collides
    in the default descriptor pool."""
    out = tempfile.mkdtemp(prefix="seqd-refl-")
    mods = {}
    for ver in ("v1", "v1alpha"):
        name = "reflection_" + ver
        shutil.copy(os.path.join(SOURCE, "proto", "grpc", "reflection", ver, "reflection.proto"),
                    os.path.join(out, name + ".proto"))
        subprocess.run(["protoc", "--proto_path=" + out, "--python_out=" + out,
                        name + ".proto"], check=True)
    sys.path.insert(0, out)
    for ver in ("v1", "v1alpha"):
        mods[ver] = importlib.import_module("reflection_" + ver + "_pb2")
    yield mods
    sys.path.remove(out)
    shutil.rmtree(out, ignore_errors=True)


def stream(server, mod, path, requests):
    chan = grpc.insecure_channel(server.grpc)
    try:
        call = chan.stream_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=mod.ServerReflectionResponse.FromString)
        return list(call(iter(requests), timeout=30))
    finally:
        chan.close()


def test_one_stream_many_requests(server, refl):
    m = refl["v1"]
    R = m.ServerReflectionRequest
    reqs = [R(host="h1", list_services=""),
            R(file_containing_symbol="seqd.v1.SequenceService"),
            R(file_containing_symbol="no.such.Symbol"),
            R(file_by_filename="grpc/health/v1/health.proto"),
            R(file_by_filename="nope.proto"),
            R(file_containing_symbol="seqd.v1.GetSequenceRequest.user_id"),
            R(file_containing_symbol="seqd.v1.SequenceService.GetSequence"),
            R(all_extension_numbers_of_type="seqd.v1.Event"),
            R(),
            R(list_services="")]
    resp = stream(server, m, V1, reqs)
    assert len(resp) == len(reqs)
    for q, r in zip(reqs, resp):
        assert r.original_request == q
    services = [s.name for s in resp[0].list_services_response.service]
    assert resp[0].valid_host == "h1"
    assert {"seqd.v1.SequenceService", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= set(services), services
    assert len(set(services)) == len(services)
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in resp[1].file_descriptor_response.file_descriptor_proto]
    assert files[0].name == "seqd/v1/seqd.proto"
    assert "SequenceService" in [s.name for s in files[0].service]
    for r, what in ((resp[2], "no.such.Symbol"), (resp[4], "nope.proto")):
        assert r.WhichOneof("message_response") == "error_response"
        assert r.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
        assert what in r.error_response.error_message
    health = [descriptor_pb2.FileDescriptorProto.FromString(b)
              for b in resp[3].file_descriptor_response.file_descriptor_proto]
    assert [f.name for f in health] == ["grpc/health/v1/health.proto"]
    for r in (resp[5], resp[6]):  # a field and a method: their file
        assert descriptor_pb2.FileDescriptorProto.FromString(
            r.file_descriptor_response.file_descriptor_proto[0]).name == "seqd/v1/seqd.proto"
    assert resp[7].all_extension_numbers_response.base_type_name == "seqd.v1.Event"
    assert list(resp[7].all_extension_numbers_response.extension_number) == []
    assert resp[8].error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [s.name for s in resp[9].list_services_response.service] == services


def test_v1alpha(server, refl):
    m = refl["v1alpha"]
    resp = stream(server, m, V1ALPHA, [m.ServerReflectionRequest(list_services=""),
                                       m.ServerReflectionRequest(
                                           file_containing_symbol="grpc.health.v1.Health")])
    assert "seqd.v1.SequenceService" in [s.name for s in resp[0].list_services_response.service]
    f = descriptor_pb2.FileDescriptorProto.FromString(
        resp[1].file_descriptor_response.file_descriptor_proto[0])
    assert f.package == "grpc.health.v1"
    # the reflection service describes itself too
    resp = stream(server, m, V1ALPHA, [m.ServerReflectionRequest(
        file_containing_symbol="grpc.reflection.v1alpha.ServerReflection")])
    f = descriptor_pb2.FileDescriptorProto.FromString(
        resp[0].file_descriptor_response.file_descriptor_proto[0])
    assert f.package == "grpc.reflection.v1alpha"


def _message_class(pool, name):
    desc = pool.FindMessageTypeByName(name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def test_call_getsequence_from_reflected_descriptors(server, refl):
    """What grpcurl does: no stubs of seqd.proto, only what reflection returns."""
    u, t = new_user(), now_ms() - 60000
    server.producer().events([dict(user_id=u, time_ms=t, event_type="click", item_id=4242,
                                   event_id="r1", attributes={"dwell_ms": 700})])
    server.wait_visible(u, 1)
    m = refl["v1"]
    R = m.ServerReflectionRequest
    services = stream(server, m, V1, [R(list_services="")])[0].list_services_response.service
    assert "seqd.v1.SequenceService" in [s.name for s in services]
    resp = stream(server, m, V1, [R(file_containing_symbol="seqd.v1.SequenceService")])[0]
    pool = descriptor_pool.DescriptorPool()
    for b in resp.file_descriptor_response.file_descriptor_proto:
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(b))
    method = pool.FindServiceByName("seqd.v1.SequenceService").FindMethodByName("GetSequence")
    Req = _message_class(pool, method.input_type.full_name)
    Resp = _message_class(pool, method.output_type.full_name)
    chan = grpc.insecure_channel(server.grpc)
    try:
        call = chan.unary_unary("/seqd.v1.SequenceService/GetSequence",
                                request_serializer=lambda x: x.SerializeToString(),
                                response_deserializer=Resp.FromString)
        out = call(Req(user_id=u, sequence="engagements"), timeout=30)
    finally:
        chan.close()
    assert list(out.item_ids) == [4242] and list(out.timestamps_ms) == [t]
    assert [c.name for c in out.columns][:1] == ["dwell_ms"]


def test_garbage_fails_the_call_not_the_connection(server, refl):
    m = refl["v1"]
    good = m.ServerReflectionRequest(list_services="").SerializeToString()
    with H2Conn(server.grpc) as h:
        for path in (V1, V1ALPHA):
            status, msg, _ = h.unary(path, b"\xff\xff\xff\xff")
            assert status == grpc.StatusCode.INVALID_ARGUMENT.value[0], msg
            assert "ServerReflectionRequest" in msg
            status, msg, body = h.unary(path, good)  # same connection
            assert status == 0, msg
            assert m.ServerReflectionResponse.FromString(body).list_services_response.service
