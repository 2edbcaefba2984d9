"""The batch path end to end: seqctl build writes SST files, seqctl load / LoadBatch
ingests them, and reads follow the merge rules (PRODUCT.md rules 1, 2, 4, 6): batch owns
covered history, the stream owns the recent range, generations only move forward.
"""
import json
import os
import shutil
import subprocess

import grpc
import pytest

from helpers import HOUR, SEQCTL_BIN, batch_root_server, new_user, now_ms, pb

GEN = 1000


@pytest.fixture(scope="module")
def bserver(tmp_path_factory, stubs):
    s = batch_root_server(str(tmp_path_factory.mktemp("batch")))
    yield s
    s.kill()


def floor_hour(t):
    return t - t % HOUR


def build(s, name, seq, start, end, gen, events):
    """seqctl build into <root>/<name>; returns the SST paths."""
    src = os.path.join(s.workdir, name + ".jsonl")
    with open(src, "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    out = os.path.join(s.root, name)
    r = subprocess.run([SEQCTL_BIN, "build", "--definition", s.definition_path, "--sequence", seq,
                        "--start-ms", str(start), "--end-ms", str(end), "--generation",
                        str(gen), "--out", out, src], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".sst"))


def load(s, seq, start, end, gen, paths):
    req = pb().LoadBatchRequest(sequence=seq, start_ms=start, end_ms=end, generation=gen,
                                sst_paths=paths)
    return s.stub().LoadBatch(req, timeout=120)


def load_code(s, *a):
    with pytest.raises(grpc.RpcError) as e:
        load(s, *a)
    return e.value.code(), e.value.details()


def ev(u, t, item, eid, typ="click"):
    return {"user_id": u, "event_time_ms": t, "event_type": typ, "item_id": item,
            "event_id": eid}


def test_history_is_the_batch_and_generations_move_forward(bserver):
    s = bserver
    now = now_ms()
    B = floor_hour(now - 3 * 24 * HOUR)
    A = B - 6 * HOUR
    u, v = new_user(), new_user()
    # stream: u in the covered range and recent; v only in the covered range
    s.producer().events([
        dict(user_id=u, time_ms=A + HOUR, event_type="click", item_id=1, event_id="s1"),
        dict(user_id=u, time_ms=now - 60000, event_type="click", item_id=2, event_id="s2"),
        dict(user_id=v, time_ms=A + 2 * HOUR, event_type="click", item_id=3, event_id="s3"),
        dict(user_id=u, time_ms=A - HOUR, event_type="click", item_id=4, event_id="s4"),
    ])
    s.wait_visible(u, 3)
    s.wait_visible(v, 1)
    paths = build(s, "g1", "engagements", A, B, GEN, [
        ev(u, A + 30 * 60000, 10, "b1"), ev(u, A + 3 * HOUR, 11, "b2", "save")])
    r = load(s, "engagements", A, B, GEN, paths)
    assert (r.generation, r.users, r.events) == (GEN, 1, 2) and r.files == len(paths)
    got = s.get(u)
    assert list(got.item_ids) == [2, 11, 10, 4]  # s1 hidden: the batch owns [A, B)
    assert got.batch_generation == GEN and got.batch_watermark_ms == B
    assert list(s.get(v).item_ids) == []        # absent from the batch: nothing there
    unknown = s.get(9191919191)
    assert unknown.batch_generation == GEN and unknown.batch_watermark_ms == B

    # the same load again is a no-op with the same counts
    r = load(s, "engagements", A, B, GEN, paths)
    assert (r.generation, r.users, r.events) == (GEN, 1, 2)
    # the committed generation with another range, or an older one: refused
    assert load_code(s, "engagements", A, B + HOUR, GEN, paths)[0] == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert load_code(s, "engagements", A, B, GEN - 1, paths)[0] == \
        grpc.StatusCode.FAILED_PRECONDITION

    # a newer generation replaces its range only
    paths2 = build(s, "g2", "engagements", A, A + 2 * HOUR, GEN + 1, [ev(u, A + 90 * 60000, 12, "b3")])
    r = subprocess.run([SEQCTL_BIN, "--server", s.grpc, "load", "--sequence", "engagements",
                        "--start-ms", str(A), "--end-ms", str(A + 2 * HOUR), "--generation",
                        str(GEN + 1)] + paths2, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "loaded generation %d" % (GEN + 1) in r.stdout
    assert list(s.get(u).item_ids) == [2, 11, 12, 4]
    st = {x["name"]: x for x in s.status()["sequences"]}["engagements"]
    assert st["batch_generation"] == GEN + 1
    # seqctl status: completeness (batch) per sequence, apart from the stream's freshness
    out = s.seqctl("status", check=True).stdout
    seq_line = [l for l in out.splitlines() if l.strip().startswith("engagements:")][0]
    assert "batch_generation %d" % (GEN + 1) in seq_line and "batch_watermark_ms %d" % B in seq_line
    assert "coverage [%d, %d) generation %d" % (A, A + 2 * HOUR, GEN + 1) in out
    assert "coverage [%d, %d) generation %d" % (A + 2 * HOUR, B, GEN) in out
    assert "batch" not in [l for l in out.splitlines() if l.startswith("stream:")][0]


def test_late_stream_event_in_batch_history_not_shown(bserver):
    s = bserver
    now = now_ms()
    B = floor_hour(now - 2 * 24 * HOUR)
    A = B - 2 * HOUR
    u = new_user()
    paths = build(s, "late", "short", A, B, GEN, [ev(u, A + 1000, 20, "L1")])
    load(s, "short", A, B, GEN, paths)
    # completeness in /metrics, per sequence, apart from the stream's freshness
    code, body = s.http("/metrics")
    gen = [l for l in body.splitlines() if l.startswith('seqd_batch_generation{sequence="short"} ')]
    wm = [l for l in body.splitlines()
          if l.startswith('seqd_batch_watermark_seconds{sequence="short"} ')]
    assert gen and int(float(gen[0].split()[1])) >= GEN, body
    assert wm and float(wm[0].split()[1]) >= B / 1000.0, body
    before = s.counts()["late_batch_owned"]
    before_metric = s.metric("seqd_events_late_batch_owned_total")
    s.producer().events([
        dict(user_id=u, time_ms=A + 2000, event_type="click", item_id=21, event_id="L2"),
        dict(user_id=u, time_ms=now - 1000, event_type="click", item_id=22, event_id="L3")])
    s.wait_item(u, 22, "short")
    assert list(s.get(u, "short").item_ids) == [22, 20]
    assert s.counts()["late_batch_owned"] >= before + 1
    assert s.metric("seqd_events_late_batch_owned_total") >= before_metric + 1


def test_recent_range_stream_copy_wins(bserver):
    s = bserver
    now = now_ms()
    R1 = floor_hour(now)
    R0 = R1 - 3 * HOUR
    u = new_user()
    s.producer().events([dict(user_id=u, time_ms=R0 + 1000, event_type="click", item_id=30,
                              event_id="same")])
    s.wait_visible(u, 1, "short")
    paths = build(s, "recent", "short", R0, R1, GEN + 5, [
        ev(u, R0 + 5000, 31, "same"), ev(u, R0 + 9000, 32, "batch-only")])
    load(s, "short", R0, R1, GEN + 5, paths)
    assert list(s.get(u, "short").item_ids) == [32, 30]


def test_load_errors_change_nothing(bserver):
    s = bserver
    g = GEN + 100  # above every committed generation: only the files can be wrong
    B = floor_hour(now_ms() - 30 * 24 * HOUR)
    A = B - HOUR
    paths = build(s, "err", "engagements", A, B, g, [ev(1, A + 1, 1, "e")])
    before = s.status()["sequences"]

    outside = os.path.join(s.workdir, "outside")
    shutil.copytree(os.path.dirname(paths[0]), outside)
    code, _ = load_code(s, "engagements", A, B, g,
                        [os.path.join(outside, os.path.basename(paths[0]))])
    assert code == grpc.StatusCode.PERMISSION_DENIED

    code, msg = load_code(s, "engagements", A, B, g, [os.path.join(s.root, "err", "missing.sst")])
    assert code == grpc.StatusCode.NOT_FOUND and "missing.sst" in msg

    corrupt = os.path.join(s.root, "corrupt")
    shutil.copytree(os.path.dirname(paths[0]), corrupt)
    cp = os.path.join(corrupt, os.path.basename(paths[0]))
    with open(cp, "r+b") as f:
        f.seek(os.path.getsize(cp) // 2)
        f.write(b"\xde\xad\xbe\xef" * 8)
    code, msg = load_code(s, "engagements", A, B, g, [cp])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and os.path.basename(cp) in msg

    # files built for another sequence or range than the request says
    assert load_code(s, "short", A, B, g, paths)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert load_code(s, "engagements", A - HOUR, B, g, paths)[0] == \
        grpc.StatusCode.INVALID_ARGUMENT

    assert s.status()["sequences"] == before  # failed loads changed nothing
    assert load(s, "engagements", A, B, g, paths).generation == g
    assert s.get(1).batch_generation == g


def test_token_required_when_configured(seqd_factory, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    root = tmp_path / "root"
    root.mkdir()
    s = seqd_factory(args=["--batch-root", str(root), "--admin-token-file", str(token)])
    s.root = str(root)
    B = floor_hour(now_ms() - 5 * 24 * HOUR)
    paths = build(s, "tok", "engagements", B - HOUR, B, 7, [ev(5, B - 1000, 1, "t")])
    assert load_code(s, "engagements", B - HOUR, B, 7, paths)[0] == \
        grpc.StatusCode.UNAUTHENTICATED
    base = [SEQCTL_BIN, "--server", s.grpc, "load", "--sequence", "engagements", "--start-ms",
            str(B - HOUR), "--end-ms", str(B), "--generation", "7"]
    r = subprocess.run(base + ["--token-file", str(wrong)] + paths, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith("error: UNAUTHENTICATED")
    r = subprocess.run(base + ["--token-file", str(token)] + paths, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert list(s.get(5).item_ids) == [1]


def test_load_is_atomic_for_concurrent_readers(bserver):
    """While a newer generation loads, every BatchGetSequences call sees wholly the old
    or wholly the new batch, for all its users at once (rule 6)."""
    import threading
    s = bserver
    B = floor_hour(now_ms() - 20 * 24 * HOUR)
    A = B - 2 * HOUR
    users = [new_user() for _ in range(40)]
    old = build(s, "atom1", "engagements", A, B, GEN + 200,
                [ev(u, A + 1000 * k, 100 + k, "o-%d-%d" % (u, k)) for u in users for k in range(3)])
    new = build(s, "atom2", "engagements", A, B, GEN + 201,
                [ev(u, A + 5000 * k, 200 + k, "n-%d-%d" % (u, k)) for u in users for k in range(4)])
    load(s, "engagements", A, B, GEN + 200, old)
    reqs = pb().BatchGetSequencesRequest(requests=[
        pb().GetSequenceRequest(user_id=u, sequence="engagements", since_ms=A, until_ms=B)
        for u in users])
    stub = s.stub()
    bad, stop = [], threading.Event()
    whole = ({(GEN + 200, (102, 101, 100))}, {(GEN + 201, (203, 202, 201, 200))})

    def reader():
        while not stop.is_set():
            r = stub.BatchGetSequences(reqs, timeout=30)
            states = {(x.batch_generation, tuple(x.item_ids)) for x in r.responses}
            if states not in whole:
                bad.append(states)

    t = threading.Thread(target=reader)
    t.start()
    try:
        load(s, "engagements", A, B, GEN + 201, new)
        after = stub.BatchGetSequences(reqs, timeout=30)  # OK returned: visible to all
    finally:
        stop.set()
        t.join()
    assert not bad, bad[:3]
    assert {tuple(x.item_ids) for x in after.responses} == {(203, 202, 201, 200)}


def test_load_prepares_only_for_a_fair_share(tmp_path_factory, stubs):
    """The preparation pass reads the whole generation, so a load makes it only when the
    record cache holds at least an eighth as many entries as the load has users
    (storage/store_load.c PREPARE_SHARE): with 16 users, one cached entry is too few and
    two are enough. A fresh server, so that the cache holds only what this test reads."""
    s = batch_root_server(str(tmp_path_factory.mktemp("share")))
    try:
        B = floor_hour(now_ms() - 30 * 24 * HOUR)
        users = [new_user() for _ in range(16)]
        stub = s.stub()

        def read(u):
            return stub.GetSequence(pb().GetSequenceRequest(user_id=u, sequence="engagements",
                                                            since_ms=B - 2 * HOUR), timeout=30)

        for k in range(3):  # generation k covers [B + 2h (k-1), B + 2h k)
            lo, hi = B + 2 * HOUR * (k - 1), B + 2 * HOUR * k
            paths = build(s, "share%d" % k, "engagements", lo, hi, GEN + 500 + k,
                          [ev(u, lo + 1000, 600 + k, "sh-%d-%d" % (u, k)) for u in users])
            before = s.metric("seqd_record_cache_prepared_total")
            load(s, "engagements", lo, hi, GEN + 500 + k, paths)
            prepared = s.metric("seqd_record_cache_prepared_total") - before
            # k = 0: nothing cached; k = 1: one entry (8 < 16); k = 2: two (16 >= 16)
            assert prepared == (2 if k == 2 else 0), (k, prepared)
            for u in users[:k + 1]:
                assert list(read(u).item_ids) == list(range(600 + k, 599, -1))
    finally:
        s.kill()


def test_load_prepares_cached_users(bserver):
    """A load gives the record cache's entries of the users its generation holds that
    generation before it switches it in (storage/store_int.h seq_store_prepare_entries):
    the reads after the switch answer the new generation, each from its cached entry with
    no RocksDB read (seqd_record_cache_refreshes_local_total); a cached user the load does
    not hold gets the generation's empty mark, and its read after the switch reads nothing
    from RocksDB either."""
    s = bserver
    B = floor_hour(now_ms() - 25 * 24 * HOUR)
    A, C = B - 2 * HOUR, B + 2 * HOUR
    users, other = [new_user() for _ in range(30)], new_user()
    first = build(s, "prep1", "engagements", A, B, GEN + 300,
                  [ev(u, A + 1000 * k, 300 + k, "p-%d-%d" % (u, k))
                   for u in users + [other] for k in range(2)])
    load(s, "engagements", A, B, GEN + 300, first)
    stub = s.stub()

    def items(u):
        r = stub.GetSequence(pb().GetSequenceRequest(user_id=u, sequence="engagements",
                                                     since_ms=A, until_ms=C), timeout=30)
        return r.batch_generation, tuple(r.item_ids)

    for u in users + [other]:  # cached under the first load's coverage
        assert items(u) == (GEN + 300, (301, 300))
    later = build(s, "prep2", "engagements", B, C, GEN + 301,
                  [ev(u, B + 1000 * k, 400 + k, "q-%d-%d" % (u, k)) for u in users for k in range(3)])
    prepared = s.metric("seqd_record_cache_prepared_total")
    load(s, "engagements", B, C, GEN + 301, later)
    # the 30, `other`, and whatever earlier tests of this server left cached
    assert s.metric("seqd_record_cache_prepared_total") - prepared >= len(users) + 1
    local, misses = (s.metric("seqd_record_cache_refreshes_local_total"),
                     s.metric("seqd_record_cache_misses_total"))
    for u in users:
        assert items(u) == (GEN + 301, (402, 401, 400, 301, 300))
    assert s.metric("seqd_record_cache_refreshes_local_total") - local == len(users)
    assert s.metric("seqd_record_cache_misses_total") - misses == len(users)
    # not in the later batch: its entry got the generation's empty mark, so its read
    # refreshes from memory too
    assert items(other) == (GEN + 301, (301, 300))
    assert s.metric("seqd_record_cache_refreshes_local_total") - local == len(users) + 1
