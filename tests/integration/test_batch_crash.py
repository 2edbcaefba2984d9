"""SIGKILL during a batch load, then restart on the same data dir: readers see wholly the
old generation or wholly the new one (PRODUCT.md rule 6), and the batch keys a killed load
left behind are removed at the next start (batch gc; checked with tests/tools/dbscan on
the stopped server's data dir). Exact moments come from the SEQD_CRASH_AT hook
(storage/store_load.c: the process SIGKILLs itself there); a seeded random external
SIGKILL during a large load covers the moments in between."""
import json
import os
import random
import signal
import subprocess

import grpc
import pytest

from helpers import BUILD, HOUR, SEQCTL_BIN, Seqd, now_ms, pb

DBSCAN = os.path.join(BUILD, "tests", "dbscan")
B = (now_ms() // HOUR) * HOUR - 10 * 24 * HOUR
A = B - 24 * HOUR
USERS = list(range(500, 530))


def start(wd, crash_at=None, keep=("--keep-generations", "0", "--history-ms", "0")):
    """A seqd on wd's data dir (batch root wd/root); SEQD_CRASH_AT set only for it. By
    default it keeps no replaced load (so a replaced generation's keys must go)."""
    os.makedirs(os.path.join(wd, "root"), exist_ok=True)
    s = Seqd(wd, args=["--batch-root", os.path.join(wd, "root")] + list(keep),
             definition_path=os.path.join(wd, "definition.json")
             if os.path.exists(os.path.join(wd, "definition.json")) else None)
    if crash_at:
        os.environ["SEQD_CRASH_AT"] = crash_at
    try:
        s.start()
    finally:
        os.environ.pop("SEQD_CRASH_AT", None)
    return s


def build(s, gen, per_user, users=USERS):
    """Partition `gen` of engagements over [A, B): per_user events per user, items
    gen * 10^6 + k, so that every item tells which generation it came from."""
    src = os.path.join(s.workdir, "g%d.jsonl" % gen)
    with open(src, "w") as f:
        for u in users:
            for k in range(per_user):
                f.write(json.dumps({"user_id": u, "event_time_ms": A + (k * 997 + u) % (24 * HOUR),
                                    "event_type": "click", "item_id": gen * 10**6 + k,
                                    "event_id": "e%d-%d" % (u, k)}) + "\n")
    out = os.path.join(s.workdir, "root", "g%d" % gen)
    r = subprocess.run([SEQCTL_BIN, "build", "--definition", s.definition_path, "--sequence",
                        "engagements", "--start-ms", str(A), "--end-ms", str(B),
                        "--generation", str(gen), "--out", out, src],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".sst"))


def load(s, gen, paths):
    req = pb().LoadBatchRequest(sequence="engagements", start_ms=A, end_ms=B, generation=gen,
                                sst_paths=paths)
    return s.stub().LoadBatch(req, timeout=300)


def committed(s, users=USERS):
    """(generation, {item // 10^6 of every event}) over one BatchGetSequences call; the
    second set must be {generation} (or empty before any load): one generation only."""
    reqs = pb().BatchGetSequencesRequest(requests=[
        pb().GetSequenceRequest(user_id=u, sequence="engagements", since_ms=A, until_ms=B)
        for u in users])
    r = s.stub().BatchGetSequences(reqs, timeout=60)
    gens = {x.batch_generation for x in r.responses}
    assert len(gens) == 1, gens
    return gens.pop(), {i // 10**6 for x in r.responses for i in x.item_ids}


def batch_keys(s):
    """{generation: keys} of engagements (sequence 0) in the stopped server's data dir."""
    assert s.stop() == 0
    r = subprocess.run([DBSCAN, s.data_dir], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {int(g): int(n) for q, g, n in (l.split() for l in r.stdout.splitlines())
            if q == "0"}


@pytest.mark.parametrize("point,survives", [("load-after-verify", "old"),
                                            ("load-after-ingest", "old"),
                                            ("load-after-commit", "new")])
def test_crash_at_each_point_of_a_load(tmp_path, stubs, point, survives):
    wd = str(tmp_path)
    s = start(wd)
    old = build(s, 1, 3)
    new = build(s, 2, 4)
    assert load(s, 1, old).generation == 1
    assert committed(s) == (1, {1})
    s.stop()

    s = start(wd, crash_at=point)
    with pytest.raises(grpc.RpcError) as e:
        load(s, 2, new)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert s.wait_exit() == -signal.SIGKILL
    s.kill()

    s = start(wd)
    want = 1 if survives == "old" else 2
    assert committed(s) == (want, {want})
    st = {x["name"]: x for x in s.status()["sequences"]}["engagements"]
    assert st["batch_generation"] == want and st["batch_watermark_ms"] == B
    # gc at start: only the committed generation's keys are left (2 replaced 1 wholly)
    assert set(batch_keys(s)) == {want}

    # the load again: applied now, or (it had committed) a no-op with its counts
    s = start(wd)
    r = load(s, 2, new)
    assert (r.generation, r.users, r.events) == (2, len(USERS), 4 * len(USERS))
    assert committed(s) == (2, {2})
    assert set(batch_keys(s)) == {2}


def test_random_external_sigkill_during_large_loads(tmp_path, stubs):
    """seqctl load of a large partition, seqd SIGKILLed from outside at a seeded random
    moment: after restart, wholly the previous state or wholly the new generation."""
    rnd = random.Random(int(os.environ.get("SEQD_TEST_SEED", "4")))
    wd = str(tmp_path)
    users = list(range(1, 2001))
    s = start(wd)
    assert load(s, 1, build(s, 1, 2, users)).generation == 1
    gen_now = 1
    for gen in range(2, 8):
        paths = build(s, gen, 100, users)  # 200k events
        cmd = [SEQCTL_BIN, "--server", s.grpc, "load", "--sequence", "engagements",
               "--start-ms", str(A), "--end-ms", str(B), "--generation", str(gen)] + paths
        loader = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            loader.wait(timeout=rnd.uniform(0.0, 0.4))
        except subprocess.TimeoutExpired:
            pass
        s.proc.kill()
        s.wait_exit()
        out, err = loader.communicate(timeout=60)
        s.kill()
        s = start(wd)
        got, item_gens = committed(s, users[::37])
        assert got in (gen_now, gen) and item_gens == {got}
        if loader.returncode == 0:  # OK was returned: the new generation must be there
            assert got == gen, out
        gen_now = got
        keys = batch_keys(s)
        assert set(keys) == {gen_now}, keys
        s = start(wd)
    s.kill()
