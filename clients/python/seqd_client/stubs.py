"""The gRPC stubs of seqd.v1, generated from proto/seqd/v1/seqd.proto with Debian's protoc
and /usr/bin/grpc_python_plugin the first time they are needed (no generated code is
checked in): into $SEQD_STUBS_DIR, or a cache directory keyed by the proto's hash."""
import hashlib
import importlib
import os
import subprocess
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = "/usr/bin/grpc_python_plugin"


def proto_dir():
    d = os.environ.get("SEQD_PROTO") or os.path.join(_HERE, "..", "..", "..", "proto")
    return os.path.abspath(d)


def _generate(out):
    proto = proto_dir()
    src = os.path.join(proto, "seqd", "v1", "seqd.proto")
    if not os.path.exists(src):
        raise RuntimeError("seqd_client: %s not found (set SEQD_PROTO to seqd's proto/ dir)" % src)
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "--proto_path=" + proto, "--python_out=" + out, "--grpc_out=" + out,
                    "--plugin=protoc-gen-grpc=" + PLUGIN, "seqd/v1/seqd.proto"], check=True)


def load():
    """(seqd_pb2, seqd_pb2_grpc)."""
    try:
        return (importlib.import_module("seqd.v1.seqd_pb2"),
                importlib.import_module("seqd.v1.seqd_pb2_grpc"))
    except ImportError:
        pass
    out = os.environ.get("SEQD_STUBS_DIR")
    if not out:
        with open(os.path.join(proto_dir(), "seqd", "v1", "seqd.proto"), "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()[:16]
        out = os.path.join(os.path.expanduser("~"), ".cache", "seqd_client", h)
    if not os.path.exists(os.path.join(out, "seqd", "v1", "seqd_pb2_grpc.py")):
        _generate(out)
    if out not in sys.path:
        sys.path.insert(0, out)
    return (importlib.import_module("seqd.v1.seqd_pb2"),
            importlib.import_module("seqd.v1.seqd_pb2_grpc"))
