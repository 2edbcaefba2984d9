"""LoadBatch failures end to end (gRPC and seqctl load), PRODUCT.md "Details": corrupt
SST (flipped bytes, with and without a manifest that agrees), foreign SST (a valid RocksDB
SST with other keys, written by tests/tools/sstwrite, manifest hash regenerated so only the
key check can catch it), out-of-range key, missing file, stale generation, the committed
generation with another range, an incompatible definition, manifests that list other files.
After each: generation, coverage and data unchanged, and the message names the file. Also a
compatible definition change (a column appended on the server) loads."""
import json
import os
import shutil
import subprocess

import grpc
import pytest

from helpers import BUILD, HOUR, SEQCTL_BIN, Seqd, column, make_test_definition, now_ms, pb

SSTWRITE = os.path.join(BUILD, "tests", "sstwrite")
B = (now_ms() // HOUR) * HOUR - 5 * 24 * HOUR
A = B - 4 * HOUR
GEN = 50
U = 77


@pytest.fixture(scope="module")
def es(tmp_path_factory, stubs):
    wd = str(tmp_path_factory.mktemp("batcherr"))
    root = os.path.join(wd, "root")
    os.makedirs(root)
    s = Seqd(wd, args=["--batch-root", root])
    s.root = root
    s.start()
    s.good = build(s, "good", GEN, [(U, A + 1000, 1, "a"), (U, A + 2 * HOUR, 2, "b")])
    load(s, GEN, s.good)
    yield s
    s.kill()


def build(s, name, gen, events, definition_path=None, start=A, end=B):
    src = os.path.join(s.workdir, name + ".jsonl")
    with open(src, "w") as f:
        for u, t, item, eid in events:
            f.write(json.dumps({"user_id": u, "event_time_ms": t, "event_type": "click",
                                "item_id": item, "event_id": eid}) + "\n")
    out = os.path.join(s.root, name)
    r = subprocess.run([SEQCTL_BIN, "build", "--definition", definition_path or s.definition_path,
                        "--sequence", "engagements", "--start-ms", str(start), "--end-ms",
                        str(end), "--generation", str(gen), "--out", out, src],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".sst"))


def load(s, gen, paths, start=A, end=B):
    req = pb().LoadBatchRequest(sequence="engagements", start_ms=start, end_ms=end,
                                generation=gen, sst_paths=paths)
    return s.stub().LoadBatch(req, timeout=120)


def snapshot(s):
    r = s.get(U)
    return (json.dumps(s.status()["sequences"], sort_keys=True), list(r.item_ids),
            r.batch_generation, r.batch_watermark_ms)


def refused(s, gen, paths, code, what, start=A, end=B):
    """The load fails with code and a message naming `what`, over gRPC and seqctl load,
    and nothing visible changes."""
    before = snapshot(s)
    with pytest.raises(grpc.RpcError) as e:
        load(s, gen, paths, start, end)
    assert e.value.code() == code, e.value.details()
    assert what in e.value.details(), e.value.details()
    r = s.seqctl("load", "--sequence", "engagements", "--start-ms", start, "--end-ms", end,
                 "--generation", gen, *paths)
    assert r.returncode == 1 and r.stderr.startswith("error: %s: " % code.name), r.stderr
    assert what in r.stderr
    assert snapshot(s) == before
    return e.value.details()


def fnv1a64(path):
    h = 0xcbf29ce484222325
    with open(path, "rb") as f:
        for b in f.read():
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def copy_partition(s, name, gen=GEN + 1):
    """A fresh, loadable partition (generation gen) in <root>/name; returns its SST path."""
    return build(s, name, gen, [(U, A + 5000, 9, "x")])[0]


def rehash(sst, users=None, events=None):
    """Rewrites the manifest entry of sst so its size and hash agree with the bytes (as a
    batch built before xxh3_64 had them: FNV-1a 64, which a load still checks)."""
    mpath = os.path.join(os.path.dirname(sst), "manifest.json")
    with open(mpath) as f:
        m = json.load(f)
    for fe in m["files"]:
        if fe["name"] == os.path.basename(sst):
            fe.pop("xxh3_64", None)
            fe["size"], fe["fnv1a64"] = os.path.getsize(sst), fnv1a64(sst)
            if users is not None:
                fe["users"], fe["events"], m["users"], m["events"] = users, events, users, events
    with open(mpath, "w") as f:
        json.dump(m, f)


def sstwrite(path, lines):
    r = subprocess.run([SSTWRITE, path, str(HOUR)], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def flip(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 3)
        chunk = bytearray(f.read(16))
        f.seek(os.path.getsize(path) // 3)
        f.write(bytes(b ^ 0xFF for b in chunk))


def test_corrupt_sst(es):
    p = copy_partition(es, "corrupt")
    flip(p)
    msg = refused(es, GEN + 1, [p], grpc.StatusCode.INVALID_ARGUMENT, "part-00000.sst")
    assert "corrupt" in msg
    rehash(p)  # the manifest now agrees: RocksDB's block checksums must catch it
    refused(es, GEN + 1, [p], grpc.StatusCode.INVALID_ARGUMENT, "part-00000.sst")


def test_foreign_sst(es):
    p = copy_partition(es, "foreign")
    sstwrite(p, ["raw 666f6f 626172", "raw 7a7a 7a7a"])  # a valid SST: foo, zz
    rehash(p)
    msg = refused(es, GEN + 1, [p], grpc.StatusCode.INVALID_ARGUMENT, "part-00000.sst")
    assert "not a seqd batch key" in msg


def test_out_of_range_and_other_generation_keys(es):
    p = copy_partition(es, "range")
    sstwrite(p, ["marker 0 %d" % (GEN + 1), "event 0 %d %d %d 5 r1" % (GEN + 1, U, B + 1000)])
    rehash(p, 1, 1)
    assert "outside the requested range" in refused(
        es, GEN + 1, [p], grpc.StatusCode.INVALID_ARGUMENT, "part-00000.sst")
    sstwrite(p, ["event 0 %d %d %d 5 r1" % (GEN + 7, U, A + 1000)])
    rehash(p, 1, 1)
    assert "another generation" in refused(
        es, GEN + 1, [p], grpc.StatusCode.INVALID_ARGUMENT, "part-00000.sst")


def test_missing_file(es):
    p = os.path.join(os.path.dirname(es.good[0]), "part-00009.sst")
    refused(es, GEN + 1, [p], grpc.StatusCode.NOT_FOUND, "part-00009.sst")


def test_stale_generation_and_same_generation_other_range(es):
    refused(es, GEN - 1, es.good, grpc.StatusCode.FAILED_PRECONDITION, "older")
    other = build(es, "other-range", GEN, [(U, A + 1000, 3, "c")], end=B + HOUR)
    refused(es, GEN, other, grpc.StatusCode.FAILED_PRECONDITION, "already committed",
            end=B + HOUR)


def test_manifest_lists_other_files(es):
    p = copy_partition(es, "lists")
    extra = os.path.join(os.path.dirname(p), "part-00001.sst")
    shutil.copy(p, extra)  # in the directory, not in the manifest
    refused(es, GEN + 1, [p, extra], grpc.StatusCode.INVALID_ARGUMENT, "manifest")
    mpath = os.path.join(os.path.dirname(p), "manifest.json")
    with open(mpath) as f:
        m = json.load(f)
    m["files"][0]["name"] = "part-00001.sst"  # lists another file than the one requested
    with open(mpath, "w") as f:
        json.dump(m, f)
    assert "not listed" in refused(es, GEN + 1, [p], grpc.StatusCode.INVALID_ARGUMENT,
                                   "part-00000.sst")


def test_incompatible_definition_refused(es):
    d = make_test_definition()
    d["sequences"][0]["event_types"] = ["save", "click", "view"]  # reordered
    path = os.path.join(es.workdir, "reordered.json")
    with open(path, "w") as f:
        json.dump(d, f)
    p = build(es, "incompat", GEN + 1, [(U, A + 1000, 4, "d")], definition_path=path)
    assert "incompatible" in refused(es, GEN + 1, p, grpc.StatusCode.FAILED_PRECONDITION,
                                     "manifest")


def test_file_hashes_old_and_new(es):
    """A build fingerprints each file with xxh3_64 (storage/batch_file.h); a batch built
    before, whose manifest has FNV-1a 64 ("fnv1a64"), still verifies (a dry run: every check
    of a load, nothing changed); an entry with both hashes or none, or an FNV-1a 64 that is
    not the file's, is refused naming what is wrong."""
    p = copy_partition(es, "hashes")
    mpath = os.path.join(os.path.dirname(p), "manifest.json")
    with open(mpath) as f:
        m = json.load(f)
    assert [sorted(k for k in fe if "64" in k) for fe in m["files"]] == [["xxh3_64"]]
    new_hash = m["files"][0]["xxh3_64"]
    req = pb().LoadBatchRequest(sequence="engagements", start_ms=A, end_ms=B,
                                generation=GEN + 1, sst_paths=[p], dry_run=True)
    assert es.stub().LoadBatch(req, timeout=120).files == 1
    rehash(p)  # the old format: FNV-1a 64
    assert es.stub().LoadBatch(req, timeout=120).files == 1
    for entry, what in (({"xxh3_64": new_hash}, "both xxh3_64 and fnv1a64"),
                        ({"fnv1a64": None}, "no hash (xxh3_64 or fnv1a64)"),
                        ({"fnv1a64": "%016x" % (int(fnv1a64(p), 16) ^ 1)},
                         "contents differ from its manifest")):
        with open(mpath) as f:
            m = json.load(f)
        for k, v in entry.items():
            if v is None:
                m["files"][0].pop(k)
            else:
                m["files"][0][k] = v
        with open(mpath, "w") as f:
            json.dump(m, f)
        refused(es, GEN + 1, [p], grpc.StatusCode.INVALID_ARGUMENT, what)
        rehash(p)


def test_failed_loads_left_the_good_one(es):
    r = es.get(U)
    assert (list(r.item_ids), r.batch_generation, r.batch_watermark_ms) == ([2, 1], GEN, B)
    assert load(es, GEN + 1, [copy_partition(es, "after")]).generation == GEN + 1
    assert list(es.get(U).item_ids) == [9]


def test_compatible_extension_loads(seqd_factory, tmp_path):
    """Built with the test definition; the server's appends a column: the batch loads and
    its events read the new column as its default."""
    d = make_test_definition()
    d["sequences"][0]["columns"].append({"name": "rank", "default": 7})
    root = tmp_path / "root"
    root.mkdir()
    s = seqd_factory(definition=d, args=["--batch-root", str(root)])
    s.root = str(root)
    old_def = tmp_path / "old.json"
    old_def.write_text(json.dumps(make_test_definition()))
    p = build(s, "ext", 3, [(U, A + 1000, 8, "e")], definition_path=str(old_def))
    r = load(s, 3, p)
    assert (r.generation, r.events) == (3, 1)
    got = s.get(U)
    assert list(got.item_ids) == [8] and column(got, "rank") == [7.0]
    assert column(got, "position") == [-1.0]
