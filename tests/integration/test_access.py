"""Access control (issue 6, item 5): LoadBatch reads only below --batch-root, whatever
path tricks the request plays (`..`, symlinked files and folders, absolute paths, mixes of
good and bad paths), a refused load changes nothing, the token is checked, and the admin
port listens on loopback by default."""
import os
import shutil

import grpc
import pytest

from helpers import HOUR, batch_root_server, now_ms
from test_batch import build, ev, floor_hour, load, load_code

GEN = 500


@pytest.fixture(scope="module")
def aserver(tmp_path_factory, stubs):
    s = batch_root_server(str(tmp_path_factory.mktemp("access")))
    yield s
    s.kill()


@pytest.fixture(scope="module")
def part(aserver):
    """A good partition inside the root and a copy of it outside, next to the root."""
    s = aserver
    B = floor_hour(now_ms() - 10 * 24 * HOUR)
    A = B - HOUR
    paths = build(s, "good", "engagements", A, B, GEN, [ev(9, A + 1, 1, "a1")])
    outside = os.path.join(s.workdir, "outside")
    shutil.copytree(os.path.dirname(paths[0]), outside)
    name = os.path.basename(paths[0])
    return {"A": A, "B": B, "paths": paths, "name": name,
            "outside": os.path.join(outside, name), "outside_dir": outside}


def refused(s, p, paths):
    before = s.status()["sequences"]
    code, msg = load_code(s, "engagements", p["A"], p["B"], GEN, paths)
    assert s.status()["sequences"] == before, "a refused load changed the state"
    return code, msg


def test_absolute_path_outside(aserver, part):
    assert refused(aserver, part, [part["outside"]])[0] == grpc.StatusCode.PERMISSION_DENIED


def test_dotdot_escapes(aserver, part):
    s, name = aserver, part["name"]
    for p in ["../outside/" + name,
              os.path.join(s.root, "..", "outside", name),
              os.path.join(s.root, "good", "..", "..", "outside", name),
              "good/../../outside/" + name]:
        assert refused(s, part, [p])[0] == grpc.StatusCode.PERMISSION_DENIED, p


def test_symlinked_file_and_folder(aserver, part):
    s, name = aserver, part["name"]
    link_dir = os.path.join(s.root, "linkdir")
    os.symlink(part["outside_dir"], link_dir)
    assert refused(s, part, [os.path.join(link_dir, name)])[0] == \
        grpc.StatusCode.PERMISSION_DENIED
    mixed = os.path.join(s.root, "mixed")
    os.makedirs(mixed)
    os.symlink(part["outside"], os.path.join(mixed, name))
    assert refused(s, part, [os.path.join(mixed, name)])[0] == \
        grpc.StatusCode.PERMISSION_DENIED
    # a symlink to the root itself, then out of it
    os.symlink(s.root, os.path.join(s.root, "self"))
    assert refused(s, part, ["self/../outside/" + name])[0] in (
        grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)


def test_root_itself_and_system_files(aserver, part):
    for p in [aserver.root, "/etc/passwd", "/", "", "/proc/self/environ"]:
        assert refused(aserver, part, [p])[0] in (
            grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT), p


def test_mix_of_good_and_bad_paths(aserver, part):
    code, msg = refused(aserver, part, part["paths"] + [part["outside"]])
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = refused(aserver, part, [part["outside"]] + part["paths"])
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # the good files alone still load
    assert load(aserver, "engagements", part["A"], part["B"], GEN, part["paths"]).generation == GEN
    assert aserver.get(9).batch_generation == GEN


def test_admin_listens_on_loopback_by_default(tmp_path):
    """The default --admin-listen is 127.0.0.1: started without the flag (its port taken
    from the free-port helper via --grpc-listen only), the ready line says 127.0.0.1."""
    from helpers import SEQD_BIN
    import subprocess
    out = subprocess.run([SEQD_BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert "--admin-listen 127.0.0.1:8080" in out.stdout
    assert "--grpc-listen 127.0.0.1:50051" in out.stdout
