"""Partitioned batches (seqctl build --partitions P, storage/batch_parts.h) on one node:
every user lands in the part Kafka's murmur2 says (docs/seqd_partition.py, the function
the docs' PySpark job uses, is checked against tests/unit/murmur2_vectors.tsv first); the
parts together hold exactly what an unpartitioned build of the same input holds;
an empty partition is an empty part; two builders (--only-partitions, one from the whole
input, one from its own pre-partitioned share) write one batch that LoadBatch loads as one
generation; the docs' job without Spark (input pre-partitioned by docs/seqd_partition.py,
one builder per partition in parallel, an empty partition from /dev/null) loads; a
missing part, P unlike the topic's, parts of two generations and a part of
another definition are FAILED_PRECONDITION with nothing changed; a second builder with
another generation is refused at build time."""
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from helpers import BUILD, HOUR, SEQCTL_BIN, SOURCE, Seqd, make_test_definition, now_ms, pb

sys.path.insert(0, os.path.join(SOURCE, "docs"))
from seqd_partition import murmur2, partition_of  # noqa: E402  (the docs' own module)

DBSCAN = os.path.join(BUILD, "tests", "dbscan")
VECTORS = os.path.join(SOURCE, "tests", "unit", "murmur2_vectors.tsv")
B = (now_ms() // HOUR) * HOUR - 6 * 24 * HOUR
A = B - 24 * HOUR
P = 8  # the embedded topic's partitions


def test_python_murmur2_matches_the_vectors():
    rows = [l.split("\t") for l in open(VECTORS) if l.strip() and not l.startswith(("#", "key"))]
    assert len(rows) > 20
    for key, h, p8, p16, p64 in rows:
        assert murmur2(key.encode()) == int(h), key
        assert [partition_of(key, n) for n in (8, 16, 64)] == [int(p8), int(p16), int(p64)]


def events(n, users, gen_tag="a"):
    return [{"user_id": 1 + i % users, "event_time_ms": A + (i * 7919) % (24 * HOUR),
             "event_type": ["click", "save"][i % 2], "item_id": i, "event_id": gen_tag + str(i)}
            for i in range(n)]


def write_jsonl(path, evs):
    with open(path, "w") as f:
        for e in evs:
            f.write(json.dumps(e) + "\n")
    return path


def build(defn, out, src, gen, *extra, ok=True):
    r = subprocess.run([SEQCTL_BIN, "build", "--definition", defn, "--sequence", "engagements",
                        "--start-ms", str(A), "--end-ms", str(B), "--generation", str(gen),
                        "--out", out] + [str(x) for x in extra] + [src],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode == 0) == ok, r.stderr
    return json.loads(r.stdout) if ok else r.stderr


def entries(d):
    """Every SST entry of directory d as (keyhex, valhex)."""
    out = []
    for f in sorted(x for x in os.listdir(d) if x.endswith(".sst")):
        r = subprocess.run([DBSCAN, "--sst", os.path.join(d, f)], capture_output=True,
                           text=True, timeout=60, check=True)
        out += [tuple(l.split()) for l in r.stdout.splitlines()]
    return out


def part_files(out, parts=None):
    names = sorted(x for x in os.listdir(out) if x.startswith("partition-"))
    return [os.path.join(out, d, f) for d in names
            if parts is None or int(d.split("-")[1]) in parts
            for f in sorted(os.listdir(os.path.join(out, d))) if f.endswith(".sst")]


@pytest.fixture
def defn(tmp_path):
    p = str(tmp_path / "def.json")
    with open(p, "w") as f:
        json.dump(make_test_definition(), f)
    return p


def test_users_land_in_their_murmur2_part_and_parts_equal_one_build(tmp_path, defn):
    src = write_jsonl(str(tmp_path / "in.jsonl"), events(40000, 700))
    whole = build(defn, str(tmp_path / "whole"), src, 3)
    # 1 MiB of records in memory: sorted runs spilled and merged across the parts
    rep = build(defn, str(tmp_path / "parts"), src, 3, "--partitions", P, "--memory-mb", 1)
    assert whole["spilled_runs"] == 0 and rep["spilled_runs"] >= 2
    assert rep["parts"] == P and rep["events"] == whole["events"] and rep["users"] == 700
    union = []
    for p in range(P):
        d = str(tmp_path / "parts" / ("partition-%05d" % p))
        m = json.load(open(os.path.join(d, "manifest.json")))
        assert (m["partitions"], m["partition"], m["generation"]) == (P, p, 3)
        users = set()
        for k, v in entries(d):
            if len(k) == 26:  # the partition marker: 'b' seq gen
                continue
            user = int(k[26:42], 16)
            assert partition_of(user, P) == p, (user, p)
            users.add(user)
            union.append((k, v))
        assert m["users"] == len(users) > 0
    expect = [e for e in entries(str(tmp_path / "whole")) if len(e[0]) != 26]
    assert sorted(union) == sorted(expect)
    desc = json.load(open(str(tmp_path / "parts" / "batch.json")))
    assert desc["partitions"] == P and desc["generation"] == 3
    assert desc["parts"] == ["partition-%05d" % p for p in range(P)]
    assert desc["fingerprint"] == json.load(open(str(tmp_path / "whole" / "manifest.json")))["fingerprint"]


def test_empty_partitions_are_empty_parts(tmp_path, defn):
    src = write_jsonl(str(tmp_path / "in.jsonl"), events(3000, 3))
    rep = build(defn, str(tmp_path / "o"), src, 4, "--partitions", 64)
    assert rep["parts"] == 64 and rep["users"] == 3
    held = {partition_of(u, 64) for u in (1, 2, 3)}
    for p in range(64):
        d = str(tmp_path / "o" / ("partition-%05d" % p))
        m = json.load(open(os.path.join(d, "manifest.json")))
        assert len(m["files"]) == 1
        assert (m["users"] > 0) == (p in held)
        if p not in held:
            assert [len(k) for k, _ in entries(d)] == [26]  # only the marker
    assert not [f for f in os.listdir(str(tmp_path / "o")) if f.startswith(".")]


def test_bad_partition_options_are_usage_errors(tmp_path, defn):
    src = write_jsonl(str(tmp_path / "in.jsonl"), events(10, 2))
    for extra in (["--only-partitions", "0"], ["--partitions", 4, "--only-partitions", "4"],
                  ["--partitions", 4, "--only-partitions", "2-1"],
                  ["--partitions", 4, "--only-partitions", "0,,1"], ["--partitions", 0]):
        r = subprocess.run([SEQCTL_BIN, "build", "--definition", defn, "--sequence",
                            "engagements", "--start-ms", str(A), "--end-ms", str(B),
                            "--generation", "1", "--out", str(tmp_path / "x")]
                           + [str(x) for x in extra] + [src], capture_output=True, text=True)
        assert r.returncode == 2, (extra, r.stderr)


@pytest.fixture(scope="module")
def node(tmp_path_factory, stubs):
    wd = str(tmp_path_factory.mktemp("parts"))
    root = os.path.join(wd, "root")
    os.makedirs(root)
    s = Seqd(wd, args=["--batch-root", root])
    s.root = root
    s.start()
    yield s
    s.kill()


def load(s, gen, paths, dry_run=False):
    req = pb().LoadBatchRequest(sequence="engagements", start_ms=A, end_ms=B, generation=gen,
                                sst_paths=paths, dry_run=dry_run)
    return s.stub().LoadBatch(req, timeout=120)


def snapshot(s):
    return json.dumps(s.status()["sequences"], sort_keys=True), list(s.get(5).item_ids)


def refused(s, gen, paths, code, what):
    before = snapshot(s)
    with pytest.raises(grpc.RpcError) as e:
        load(s, gen, paths)
    assert e.value.code() == code, e.value.details()
    assert what in e.value.details(), e.value.details()
    assert snapshot(s) == before


def test_two_builders_make_one_batch_loaded_as_one_generation(node):
    s = node
    evs = events(4000, 300, "t")
    src = write_jsonl(os.path.join(s.workdir, "all.jsonl"), evs)
    mine = write_jsonl(os.path.join(s.workdir, "mine.jsonl"),
                       [e for e in evs if partition_of(e["user_id"], P) >= 4])
    out = os.path.join(s.root, "two")
    a = build(s.definition_path, out, src, 10, "--partitions", P, "--only-partitions", "0-3")
    b = build(s.definition_path, out, mine, 10, "--partitions", P, "--only-partitions", "4-7")
    assert a["parts"] == b["parts"] == 4 and b["other_partitions"] == 0
    assert a["other_partitions"] == len(evs) - a["events"] - a["duplicates"] - a["filtered"]
    # a third builder of another generation into the same directory is refused
    err = build(s.definition_path, out, src, 11, "--partitions", P, "--only-partitions", "0",
                ok=False)
    assert "already exists" in err or "another batch" in err
    r = load(s, 10, part_files(out))
    assert (r.generation, r.users, r.events) == (10, 300, a["events"] + b["events"])
    assert r.files == len(part_files(out))
    for u in (5, 77, 299):
        want = sorted((e for e in evs if e["user_id"] == u), key=lambda e: -e["event_time_ms"])
        got = s.get(u)
        assert got.batch_generation == 10
        assert list(got.item_ids) == [e["item_id"] for e in want][:len(got.item_ids)]
        assert len(got.item_ids) == len(want)
    # the same load again: a no-op with the committed counts
    assert load(s, 10, part_files(out)).events == r.events


def test_incomplete_or_mixed_batches_are_refused_with_nothing_changed(node):
    s = node
    src = write_jsonl(os.path.join(s.workdir, "m.jsonl"), events(800, 40, "m"))
    good = os.path.join(s.root, "g20")
    build(s.definition_path, good, src, 20, "--partitions", P)
    files = part_files(good)
    # a missing part
    refused(s, 20, part_files(good, set(range(P)) - {3}),
            grpc.StatusCode.FAILED_PRECONDITION, "partition-00003")
    # P unlike the topic's
    four = os.path.join(s.root, "p4")
    build(s.definition_path, four, src, 20, "--partitions", 4)
    refused(s, 20, part_files(four), grpc.StatusCode.FAILED_PRECONDITION, "4 partitions")
    # parts of two generations: part 5 swapped for the same part of generation 21
    other = os.path.join(s.root, "g21")
    build(s.definition_path, other, src, 21, "--partitions", P)
    mixed = os.path.join(s.root, "mixed")
    shutil.copytree(good, mixed)
    shutil.rmtree(os.path.join(mixed, "partition-00005"))
    shutil.copytree(os.path.join(other, "partition-00005"), os.path.join(mixed, "partition-00005"))
    refused(s, 20, part_files(mixed), grpc.StatusCode.FAILED_PRECONDITION, "parts disagree")
    # a part built from another definition (a column more): its fingerprint differs
    d2 = make_test_definition()
    d2["sequences"][0]["columns"].append("extra_col")
    p2 = os.path.join(s.workdir, "def2.json")
    json.dump(d2, open(p2, "w"))
    otherdef = os.path.join(s.root, "d2")
    build(p2, otherdef, src, 20, "--partitions", P)
    mixdef = os.path.join(s.root, "mixdef")
    shutil.copytree(good, mixdef)
    shutil.rmtree(os.path.join(mixdef, "partition-00001"))
    shutil.copytree(os.path.join(otherdef, "partition-00001"), os.path.join(mixdef, "partition-00001"))
    refused(s, 20, part_files(mixdef), grpc.StatusCode.FAILED_PRECONDITION, "definition")
    # a part given twice (two copies of one partition in the batch directory)
    twice = os.path.join(s.root, "twice")
    shutil.copytree(good, twice)
    shutil.copytree(os.path.join(twice, "partition-00002"), os.path.join(twice, "partition-x"))
    refused(s, 20, part_files(twice), grpc.StatusCode.FAILED_PRECONDITION, "given twice")
    # no batch.json: nothing says the batch is whole
    nodesc = os.path.join(s.root, "nodesc")
    shutil.copytree(good, nodesc)
    os.unlink(os.path.join(nodesc, "batch.json"))
    refused(s, 20, part_files(nodesc), grpc.StatusCode.FAILED_PRECONDITION, "batch.json")
    # users in a part their murmur2 does not say (two parts' manifests swap partitions;
    # the files' hashes still agree): INVALID_ARGUMENT naming the file
    swapped = os.path.join(s.root, "swapped")
    shutil.copytree(good, swapped)
    for a, b in ((2, 3), (3, 2)):
        mp = os.path.join(swapped, "partition-%05d" % a, "manifest.json")
        m = json.load(open(mp))
        m["partition"] = b
        json.dump(m, open(mp, "w"))
    refused(s, 20, part_files(swapped), grpc.StatusCode.INVALID_ARGUMENT, "another partition")
    # parts of two batch directories
    refused(s, 20, part_files(good, set(range(P)) - {6}) + part_files(other, {6}),
            grpc.StatusCode.INVALID_ARGUMENT, "one batch directory")
    # the whole batch loads after all that
    r = load(s, 20, files)
    assert r.generation == 20 and r.users == 40


def test_dry_run_checks_parts_on_two_threads_and_names_the_first_bad_one(node):
    """A dry run checks the parts where they are, two at a time (storage/batch_verify.c
    check_each_part): its counts are every part's, and of two bad parts checked at once
    the one reported is the first in the batch's order, every time."""
    s = node
    src = write_jsonl(os.path.join(s.workdir, "dr.jsonl"), events(1600, 80, "dr"))
    good = os.path.join(s.root, "g30")
    rep = build(s.definition_path, good, src, 30, "--partitions", P)
    r = load(s, 30, part_files(good), dry_run=True)
    assert (r.files, r.users, r.events) == (len(part_files(good)), 80, rep["events"])
    bad = os.path.join(s.root, "bad30")
    shutil.copytree(good, bad)
    for p in (2, 3):  # a byte flipped in the middle of parts 2 and 3: hashes differ
        f = part_files(bad, {p})[0]
        with open(f, "r+b") as fh:
            fh.seek(os.path.getsize(f) // 2)
            b = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([b[0] ^ 0xFF]))
    before = snapshot(s)
    for _ in range(4):
        with pytest.raises(grpc.RpcError) as e:
            load(s, 30, part_files(bad), dry_run=True)
        d = e.value.details()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, d
        assert "partition-00002" in d and "contents differ" in d, d
    assert snapshot(s) == before


def test_the_docs_job_without_spark(node):
    """docs/batch-spark.md's two steps with a thread pool in place of Spark's tasks: the
    input split into one file per partition by docs/seqd_partition.py (Spark's
    write.partitionBy), then one seqctl build --only-partitions per partition into one
    shared directory (a partition without rows built from /dev/null), then one load."""
    s = node
    evs = events(3000, 5, "d")  # 5 users: most of the 8 partitions are empty
    staging = os.path.join(s.workdir, "staging")
    by_part = {}
    for e in evs:
        by_part.setdefault(partition_of(e["user_id"], P), []).append(e)
    for p, rows in by_part.items():
        os.makedirs(os.path.join(staging, "part=%d" % p))
        write_jsonl(os.path.join(staging, "part=%d" % p, "rows.jsonl"), rows)
    out = os.path.join(s.root, "spark-like")

    def task(p):
        d = os.path.join(staging, "part=%d" % p)
        inputs = [os.path.join(d, f) for f in os.listdir(d)] if os.path.isdir(d) else ["/dev/null"]
        r = subprocess.run([SEQCTL_BIN, "build", "--definition", s.definition_path, "--sequence",
                            "engagements", "--start-ms", str(A), "--end-ms", str(B),
                            "--generation", "30", "--out", out, "--partitions", str(P),
                            "--only-partitions", str(p), "--format", "jsonl"] + inputs,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    with ThreadPoolExecutor(4) as pool:
        reps = list(pool.map(task, range(P)))
    assert sum(r["other_partitions"] for r in reps) == 0 and len(by_part) < P
    r = load(s, 30, part_files(out))
    assert (r.generation, r.users, r.events) == (30, 5, sum(x["events"] for x in reps))
