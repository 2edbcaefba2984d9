"""Cluster-wide loads and rollbacks (PRODUCT.md "Batches in a cluster", server/loads.h) on
three nodes in two replica groups (a, b in g1; c in g2) around one `seqctl broker`, with
a shared batch root. The tests run in order on one cluster, each on the state the one
before left:
a LoadBatch sent to one node is seen wholly on every node (readers on every node during
the load never see a mix of generations), with the whole batch's counts, and again is an
OK no-op; refused loads (P unlike the topic's, a missing part, a missing file, a path
outside the root, an unpartitioned batch) write no record to `<topic>.seqd-loads` and
change nothing anywhere; a node that SIGKILLs itself while applying a load makes the call
answer UNAVAILABLE "committed; pending on" naming it, and applies the load once restarted;
a rollback sent to one node undoes the load everywhere; a node SIGKILLed while applying a
rollback applies it after its restart; a node started after two loads and a rollback
(its own group: it holds every partition) fills every partition from the log, answers
like the others and lists the batch directories it needs in /status; a node that
acquires another's partitions in a rebalance fills them before it reports them caught up
and serves them itself."""
import json
import os
import subprocess
import threading

import grpc
import pytest
from confluent_kafka import Consumer, TopicPartition

import helpers
from cluster_helpers import (P, SLOW, Broker, get_with_md, nodes_by_id, partition_of_user,
                             settled)

HOUR = helpers.HOUR
B = (helpers.now_ms() // HOUR) * HOUR - 6 * 24 * HOUR
A = B - 24 * HOUR
USERS = list(range(1, 121))
GROUPS = {"g1": ["a", "b"], "g2": ["c"]}
LOADS_TOPIC = "seqd.events.seqd-loads"


class Cluster:
    def __init__(self, tmp):
        self.tmp = tmp
        self.root = str(tmp / "root")
        os.makedirs(self.root)
        self.broker = Broker()
        self.nodes = {}
        self.defn = None

    def start(self, nid, group, crash_at=None):
        wd = str(self.tmp / ("w-" + nid))
        os.makedirs(wd, exist_ok=True)
        s = helpers.Seqd(wd, brokers=self.broker.brokers, data_dir=os.path.join(wd, "data"),
                         definition_path=os.path.join(wd, "definition.json")
                         if os.path.exists(os.path.join(wd, "definition.json")) else None,
                         args=["--group", group, "--instance-id", nid, "--batch-root",
                               self.root])
        if crash_at:
            os.environ["SEQD_CRASH_AT"] = crash_at
        try:
            s.start()
        finally:
            os.environ.pop("SEQD_CRASH_AT", None)
        s.node_id, s.group = nid, group
        self.nodes[nid] = s
        self.defn = self.defn or s.definition_path
        return s

    def restart(self, nid, crash_at=None):
        old = self.nodes[nid]
        old.kill()
        return self.start(nid, old.group, crash_at)

    def settle(self, groups=GROUPS):
        helpers.poll(lambda: settled(list(self.nodes.values()), groups),
                     "the map settled on every node")

    def stop(self):
        for s in self.nodes.values():
            s.kill()
        self.broker.stop()


@pytest.fixture(scope="module")
def cl(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cloads"))
    try:
        for nid, g in (("a", "g1"), ("b", "g1"), ("c", "g2")):
            c.start(nid, g)
        c.settle()
        yield c
    finally:
        c.stop()


def events(gen):
    """Up to 4 events per user, items gen * 10^6 + k: every item tells its generation."""
    return [{"user_id": u, "event_time_ms": A + (u * 7919 + k * 104729) % (24 * HOUR),
             "event_type": "click", "item_id": gen * 1000000 + u * 10 + k,
             "event_id": "g%d-%d-%d" % (gen, u, k)}
            for u in USERS for k in range(1 + u % 4)]


def expected(gen):
    """user -> item ids newest first, for generation gen's batch."""
    out = {}
    for e in sorted(events(gen), key=lambda e: -e["event_time_ms"]):
        out.setdefault(e["user_id"], []).append(e["item_id"])
    return out


def build(cl, gen, partitions=P, name=None, only=None):
    out = os.path.join(cl.root, name or "g%d" % gen)
    src = os.path.join(str(cl.tmp), "g%d.jsonl" % gen)
    with open(src, "w") as f:
        for e in events(gen):
            f.write(json.dumps(e) + "\n")
    cmd = [helpers.SEQCTL_BIN, "build", "--definition", cl.defn, "--sequence", "engagements",
           "--start-ms", str(A), "--end-ms", str(B), "--generation", str(gen), "--out", out]
    if partitions:
        cmd += ["--partitions", str(partitions)]
    if only:
        cmd += ["--only-partitions", only]
    r = subprocess.run(cmd + [src], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def files(out):
    """Every SST of a batch directory (all parts, or the directory itself)."""
    got = []
    for d, _, fs in sorted(os.walk(out)):
        got += [os.path.join(d, f) for f in sorted(fs) if f.endswith(".sst")]
    return got


def load(s, gen, paths, timeout=60 * SLOW):
    req = helpers.pb().LoadBatchRequest(sequence="engagements", start_ms=A, end_ms=B,
                                        generation=gen, sst_paths=paths)
    return s.stub().LoadBatch(req, timeout=timeout)


def rollback(s, gen, timeout=60 * SLOW):
    req = helpers.pb().RollbackBatchRequest(sequence="engagements", generation=gen)
    return s.stub().RollbackBatch(req, timeout=timeout)


def loads_offset(cl):
    """The end of <topic>.seqd-loads: how many records it holds."""
    c = Consumer({"bootstrap.servers": cl.broker.brokers, "group.id": "t-loads"})
    try:
        return c.get_watermark_offsets(TopicPartition(LOADS_TOPIC, 0), timeout=10)[1]
    finally:
        c.close()


def holders(cl, nid):
    return set(nodes_by_id(cl.nodes[nid])[nid]["partitions"])


def answers_like(cl, gen, nids=None):
    """Every node (or nids) answers generation gen's batch for every user; a node that holds
    the user's partition serves it itself."""
    want = expected(gen) if gen else {}
    for nid in nids or cl.nodes:
        s = cl.nodes[nid]
        mine = holders(cl, nid)
        for u in USERS[::7]:
            r, md = get_with_md(s, u, timeout=30 * SLOW)
            if r.batch_generation != gen or list(r.item_ids) != want.get(u, []):
                return False
            if partition_of_user(u, P) in mine and md.get("seqd-served-by") != nid:
                return False
    return True


def pending(details):
    """The node ids of an UNAVAILABLE "committed; pending on a, b"."""
    assert details.startswith("committed; pending on "), details
    return details[len("committed; pending on "):].split(", ")


def snapshot(cl):
    return {nid: (json.dumps(s.status()["sequences"], sort_keys=True),
                  [list(get_with_md(s, u)[0].item_ids) for u in USERS[::30]])
            for nid, s in cl.nodes.items()}


def test_cluster_load_seen_wholly_on_every_node(cl):
    out, rep = build(cl, 10)
    old, new = {}, expected(10)
    stop, seen, bad = threading.Event(), set(), []

    def reader(s):  # every answer is wholly the old state or wholly the new generation
        while not stop.is_set():
            for u in USERS[::11]:
                r = s.get(u)
                items = list(r.item_ids)
                if (r.batch_generation, items) not in ((0, old.get(u, [])), (10, new[u])):
                    bad.append((s.node_id, u, r.batch_generation, items))
                seen.add((s.node_id, r.batch_generation))

    threads = [threading.Thread(target=reader, args=(s,)) for s in cl.nodes.values()]
    for t in threads:
        t.start()
    try:
        r = load(cl.nodes["c"], 10, files(out))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not bad, bad[:5]
    # the whole batch's counts, once per partition (not once per replica group)
    assert (r.generation, r.users, r.events, r.files) == (10, len(USERS), rep["events"],
                                                          len(files(out)))
    assert answers_like(cl, 10)
    for s in cl.nodes.values():
        me = nodes_by_id(s)[s.node_id]
        assert me["generations"]["engagements"] == 10, s.node_id
        assert me["loads"] == loads_offset(cl) and not me["filling"]
    # the same call again, applied everywhere: an OK no-op with the same counts
    before = loads_offset(cl)
    r2 = load(cl.nodes["a"], 10, files(out))
    assert (r2.generation, r2.users, r2.events) == (10, r.users, r.events)
    assert loads_offset(cl) == before


def test_refused_cluster_load_writes_no_record_and_changes_nothing(cl):
    before, offset = snapshot(cl), loads_offset(cl)
    four, _ = build(cl, 11, partitions=4, name="four")
    half, _ = build(cl, 12, name="half", only="0-3")
    flat, _ = build(cl, 13, partitions=0, name="flat")
    outside = os.path.join(str(cl.tmp), "outside.sst")
    open(outside, "w").close()
    cases = [
        (11, files(four), grpc.StatusCode.FAILED_PRECONDITION, "partitions"),
        (12, files(half), grpc.StatusCode.FAILED_PRECONDITION, "not whole"),
        (12, files(half) + [os.path.join(half, "partition-00004", "part-0.sst")],
         grpc.StatusCode.NOT_FOUND, ""),
        (12, [outside], grpc.StatusCode.PERMISSION_DENIED, ""),
        (13, files(flat), grpc.StatusCode.FAILED_PRECONDITION, "--partitions"),
    ]
    for gen, paths, code, what in cases:
        with pytest.raises(grpc.RpcError) as e:
            load(cl.nodes["b"], gen, paths)
        assert e.value.code() == code, (gen, e.value.details())
        assert what in e.value.details(), e.value.details()
    assert loads_offset(cl) == offset
    assert snapshot(cl) == before


def test_node_killed_mid_load_is_pending_then_applies_after_restart(cl):
    out, rep = build(cl, 20)
    cl.restart("b", crash_at="load-after-ingest")  # b kills itself applying a load
    cl.settle()
    try:
        r = load(cl.nodes["a"], 20, files(out), timeout=8)
        ok = True
    except grpc.RpcError as e:
        ok = False
        assert e.code() == grpc.StatusCode.UNAVAILABLE, e.details()
        assert "b" in pending(e.details()), e.details()
    assert cl.nodes["b"].proc.wait(timeout=60) != 0
    if ok:  # only once b had left the map
        assert r.generation == 20
    cl.restart("b")
    cl.settle()
    helpers.poll(lambda: answers_like(cl, 20), "every node answers generation 20")
    # and the call again is now an OK no-op
    r = load(cl.nodes["c"], 20, files(out))
    assert (r.generation, r.events) == (20, rep["events"])


def test_rollback_across_the_cluster(cl):
    offset = loads_offset(cl)
    r = rollback(cl.nodes["b"], 0)  # undo 20: 10 is in effect again everywhere
    assert r.generation == 10
    assert loads_offset(cl) == offset + 1
    assert answers_like(cl, 10)
    r = rollback(cl.nodes["c"], 10)  # the newest in effect: an OK no-op, nothing written
    assert r.generation == 10 and loads_offset(cl) == offset + 1
    with pytest.raises(grpc.RpcError) as e:  # 20 was undone: refused, nothing written
        rollback(cl.nodes["a"], 20)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert loads_offset(cl) == offset + 1


def test_sigkill_during_cluster_rollback(cl):
    out, _ = build(cl, 30)
    assert load(cl.nodes["a"], 30, files(out)).generation == 30
    assert answers_like(cl, 30)
    cl.restart("c", crash_at="rollback-before-commit")
    cl.settle()
    try:
        r = rollback(cl.nodes["a"], 0, timeout=8)
        assert r.generation == 10  # only once c had left the map
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAVAILABLE, e.details()
        assert "c" in pending(e.details()), e.details()
    assert cl.nodes["c"].proc.wait(timeout=60) != 0
    cl.restart("c")
    cl.settle()
    helpers.poll(lambda: answers_like(cl, 10), "every node answers generation 10 again")


def test_late_node_answers_like_the_others(cl):
    # two loads and rollbacks are in the log; d, alone in g3, holds every partition
    d = cl.start("d", "g3")
    cl.settle(dict(GROUPS, g3=["d"]))
    me = nodes_by_id(d)["d"]
    assert me["loads"] == loads_offset(cl) and not me["filling"]
    assert sorted(me["caught_up"]) == list(range(P))
    assert answers_like(cl, 10, ["d"])
    for u in USERS[::9]:
        assert list(d.get(u).item_ids) == list(cl.nodes["a"].get(u).item_ids)
    # /status lists the batch directories d still needs on the shared root
    st = d.status()["loads"]
    assert st["applied"] == loads_offset(cl) and not st["filling"]
    assert st["filled_files"] > 0  # its partitions filled from the kept loads' parts
    assert os.path.join(cl.root, "g10") in {n["batch_dir"] for n in st["needs"]}


def test_partitions_acquired_in_a_rebalance_are_filled(cl):
    # b stops for good: once its static membership expires, a holds all of g1's
    # partitions, half of which it never loaded; it fills them before it reports them
    # caught up, and serves them itself
    before = holders(cl, "a")
    assert len(before) < P
    cl.nodes.pop("b").stop()
    cl.settle({"g1": ["a"], "g2": ["c"], "g3": ["d"]})
    assert holders(cl, "a") == set(range(P))
    assert answers_like(cl, 10, ["a"])
