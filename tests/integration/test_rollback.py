"""RollbackBatch and seqctl rollback (PRODUCT.md "Rollback"): the loads in effect, undone
atomically for readers, crash-safe (SIGKILL at the hook's moments, restart), the
generations rule after a rollback, the admin token, --keep-generations / --history-ms
and the reclaimed data gone from disk (tests/tools/dbscan on the stopped data dir)."""
import os
import signal
import threading

import grpc
import pytest

from helpers import Seqd, pb
from test_batch_crash import A, B, USERS, batch_keys, build, committed, load
from test_batch_crash import start as start_kept


def start(wd, crash_at=None):
    """A seqd with the default --keep-generations and --history-ms."""
    return start_kept(wd, crash_at, keep=())


def rollback(s, gen=0, seq="engagements", metadata=None):
    return s.stub().RollbackBatch(pb().RollbackBatchRequest(sequence=seq, generation=gen),
                                  timeout=60, metadata=metadata)


def refused(fn, *a, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*a, **kw)
    return e.value.code(), e.value.details()


def test_rollback_rules(tmp_path, stubs):
    s = start(str(tmp_path))
    paths = {g: build(s, g, 2) for g in (1, 2, 3, 4)}
    for g in (1, 2, 3):
        assert load(s, g, paths[g]).generation == g
    assert committed(s) == (3, {3})
    # the newest load in effect: an OK no-op
    assert rollback(s, 3).generation == 3 and committed(s) == (3, {3})
    # back to G1: G3 and G2 undone at once
    assert rollback(s, 1).generation == 1
    assert committed(s) == (1, {1})
    r = s.get(USERS[0], include_provenance=True)
    assert r.batch_watermark_ms == B and set(r.generations) == {1}
    loads = {x["name"]: x for x in s.status()["sequences"]}["engagements"]["loads"]
    assert [(x["generation"], x["state"]) for x in loads] == \
        [(1, "in effect"), (2, "undone"), (3, "undone")], loads
    assert loads[1]["undone_ms"] == loads[2]["undone_ms"] >= loads[2]["committed_ms"] > 0
    code, msg = refused(rollback, s, 2)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "generation 2 was undone" in msg
    code, msg = refused(rollback, s, 99)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "99 is not a committed load" in msg
    # generations after a rollback: above the highest ever committed (3), not just above 1
    code, msg = refused(load, s, 2, paths[2])
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "highest ever committed" in msg
    code, _ = refused(load, s, 3, paths[3])
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert load(s, 1, paths[1]).generation == 1  # the committed one again: a no-op
    assert load(s, 4, paths[4]).generation == 4
    # 0 undoes the newest in effect: back to 1; again: nothing left, generation 0
    assert rollback(s).generation == 1 and committed(s) == (1, {1})
    assert rollback(s).generation == 0
    assert committed(s) == (0, set())
    assert s.get(USERS[0]).batch_watermark_ms == 0
    code, msg = refused(rollback, s)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "no load in effect" in msg
    code, msg = refused(rollback, s, 1, seq="nope")
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in msg
    code, _ = refused(rollback, s, 1, seq="")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # the history survives a restart
    s.stop()
    s = start(str(tmp_path))
    assert committed(s) == (0, set())
    code, _ = refused(load, s, 4, paths[4])
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    s.kill()


def test_seqctl_rollback_and_token(tmp_path, stubs):
    wd = str(tmp_path)
    os.makedirs(os.path.join(wd, "root"))
    tok = os.path.join(wd, "token")
    with open(tok, "w") as f:
        f.write("s3cret\n")
    s = Seqd(wd, args=["--batch-root", os.path.join(wd, "root"), "--admin-token-file", tok])
    s.start()
    s.root = os.path.join(wd, "root")
    try:
        auth = [("authorization", "Bearer s3cret")]
        for g in (1, 2):
            req = pb().LoadBatchRequest(sequence="engagements", start_ms=A, end_ms=B,
                                        generation=g, sst_paths=build(s, g, 1))
            s.stub().LoadBatch(req, timeout=120, metadata=auth)
        code, _ = refused(rollback, s, 1)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, _ = refused(rollback, s, 1, metadata=[("authorization", "Bearer nope")])
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert committed(s) == (2, {2})
        r = s.seqctl("rollback", "--sequence", "engagements")
        assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr
        r = s.seqctl("rollback", "--sequence", "engagements", "--token-file", tok, check=True)
        assert r.stdout.strip() == "engagements: committed generation now 1"
        assert committed(s) == (1, {1})
        r = s.seqctl("rollback", "--sequence", "engagements", "--to", "7", "--token-file", tok)
        assert r.returncode == 1 and "FAILED_PRECONDITION" in r.stderr
        assert s.seqctl("rollback").returncode == 2
        assert s.seqctl("rollback", "--sequence", "x", "--to", "abc").returncode == 2
    finally:
        s.kill()


def test_keep_generations_and_reclaim(tmp_path, stubs):
    """N = 2, history off: after G1..G3 a rollback to G1 works; after G4 it is refused,
    and G1's keys are gone from disk."""
    wd = str(tmp_path)
    args = ["--keep-generations", "2", "--history-ms", "0"]

    def up():
        s = Seqd(wd, args=["--batch-root", os.path.join(wd, "root")] + args,
                 definition_path=os.path.join(wd, "definition.json")
                 if os.path.exists(os.path.join(wd, "definition.json")) else None)
        os.makedirs(os.path.join(wd, "root"), exist_ok=True)
        s.start()
        return s

    s = up()
    paths = {g: build(s, g, 1) for g in (1, 2, 3, 4)}
    for g in (1, 2, 3):
        load(s, g, paths[g])
    assert set(batch_keys(s)) == {1, 2, 3}  # G1, G2 replaced but kept: G1 reachable
    s = up()
    load(s, 4, paths[4])  # G1 is now the third most recently replaced
    code, msg = refused(rollback, s, 1)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "reclaimed" in msg, msg
    assert committed(s) == (4, {4})
    assert set(batch_keys(s)) == {2, 3, 4}  # G1's data deleted
    s = up()
    assert rollback(s, 2).generation == 2 and committed(s) == (2, {2})
    s.kill()


def test_readers_see_wholly_before_or_after(tmp_path, stubs):
    """Readers during rollbacks (and loads between them): every BatchGetSequences answer
    holds one generation, for every user, and its events are that generation's."""
    s = start(str(tmp_path))
    paths = {g: build(s, g, 5) for g in (1, 2, 3, 4)}
    for g in (1, 2):
        load(s, g, paths[g])
    seen, stop, errors = set(), threading.Event(), []

    def reader():
        while not stop.is_set():
            try:
                g, items = committed(s)  # asserts one generation per call
                seen.add((g, frozenset(items)))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for g in (3, 4):
            assert rollback(s, 1).generation == 1
            load(s, g, paths[g])
        assert rollback(s, 1).generation == 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert all(items == {g} for g, items in seen), seen
    assert {g for g, _ in seen} <= {1, 2, 3, 4}
    s.kill()


@pytest.mark.parametrize("point,survives", [("rollback-before-commit", 2),
                                            ("rollback-after-commit", 1)])
def test_sigkill_during_rollback(tmp_path, stubs, point, survives):
    wd = str(tmp_path)
    s = start(wd)
    for g in (1, 2):
        load(s, g, build(s, g, 3))
    s.stop()
    s = start(wd, crash_at=point)
    code, _ = refused(rollback, s, 1)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert s.wait_exit() == -signal.SIGKILL
    s.kill()
    s = start(wd)
    assert committed(s) == (survives, {survives})
    # the same call again finishes the job (or is the no-op)
    assert rollback(s, 1).generation == 1 and committed(s) == (1, {1})
    # and the undone generation stays undone across restarts
    s.stop()
    s = start(wd)
    assert committed(s) == (1, {1})
    code, _ = refused(rollback, s, 2)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    s.kill()
