"""Who a cluster-wide load waits for (server/cluster.h seq_cluster_pending): the members of
the map that hold a partition, not a single node (no --group) consuming the same topic on
the same broker. That node is in the map (it publishes its record, holding every
partition) but never applies the cluster's loads, so a receiver that waited for it
answered UNAVAILABLE "committed; pending on solo" past every deadline (the bug this
guards). Two members in one group (a, b: half of the partitions each) and the single node;
a dry run and a load sent to a member answer OK with the whole batch's counts, and the
single node's own state is unchanged (its loads stay local)."""
import json
import os
import subprocess

import pytest

import helpers
from cluster_helpers import P, SLOW, Broker, nodes_by_id, start_batch_node

HOUR = helpers.HOUR
B = (helpers.now_ms() // HOUR) * HOUR - 6 * 24 * HOUR
A = B - 24 * HOUR
USERS = list(range(1, 31))
GEN = 3


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cnonmember")
    root = str(tmp / "root")
    os.makedirs(root)
    broker = Broker()
    nodes = {}
    try:
        for nid, args in (("a", ["--group", "g1", "--instance-id", "a"]),
                          ("b", ["--group", "g1", "--instance-id", "b"]),
                          ("solo", [])):  # no group: every partition, alone
            nodes[nid] = start_batch_node(tmp, nid, broker.brokers, root, args)

        def ready():
            m = nodes_by_id(nodes["a"])
            members = [m.get(n) for n in ("a", "b")]
            if any(e is None or not e["ready"] or e["caught_up"] != e["partitions"]
                   for e in members):
                return False
            held = sorted(members[0]["partitions"] + members[1]["partitions"])
            # the single node is in a's map, holding partitions: what the bug waited on
            solo = [e for nid, e in m.items() if nid not in ("a", "b")]
            return held == list(range(P)) and len(solo) == 1 and solo[0]["partitions"]
        helpers.poll(ready, "a's map lists a and b holding every partition, and the single node")
        yield tmp, root, nodes
    finally:
        for s in nodes.values():
            s.kill()
        broker.stop()


def build(tmp, root, defn):
    out = os.path.join(root, "g%d" % GEN)
    src = os.path.join(str(tmp), "batch.jsonl")
    with open(src, "w") as f:
        for u in USERS:
            f.write(json.dumps({"user_id": u, "event_time_ms": A + u, "event_type": "click",
                                "item_id": 100 + u, "event_id": "b-%d" % u}) + "\n")
    r = subprocess.run([helpers.SEQCTL_BIN, "build", "--definition", defn, "--sequence",
                        "engagements", "--start-ms", str(A), "--end-ms", str(B), "--generation",
                        str(GEN), "--partitions", str(P), "--out", out, src],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    paths = []
    for d, _, fs in sorted(os.walk(out)):
        paths += [os.path.join(d, f) for f in sorted(fs) if f.endswith(".sst")]
    return paths


def load(s, paths, dry_run=False):
    req = helpers.pb().LoadBatchRequest(sequence="engagements", start_ms=A, end_ms=B,
                                        generation=GEN, sst_paths=paths, dry_run=dry_run)
    # well past what two members need; the bug answered UNAVAILABLE at this deadline
    r = s.stub().LoadBatch(req, timeout=30 * SLOW)
    return (r.generation, r.files, r.users, r.events)


def test_cluster_load_does_not_wait_for_a_single_node_on_the_topic(env):
    tmp, root, nodes = env
    paths = build(tmp, root, nodes["a"].definition_path)
    want = (GEN, len(paths), len(USERS), len(USERS))
    assert load(nodes["a"], paths, dry_run=True) == want
    assert load(nodes["a"], paths) == want
    for nid in ("a", "b"):  # (b's map shows a's record as of its last publication)
        helpers.poll(lambda: nodes_by_id(nodes["b"])[nid]["generations"]["engagements"] == GEN,
                     "%s has the load" % nid)
    for u in USERS[::7]:  # read at either member, forwarded to the holder if need be
        assert list(nodes["b"].get(u).item_ids) == [100 + u]
    # the single node applies no cluster load: its loads stay local
    assert [q["batch_generation"] for q in nodes["solo"].status()["sequences"]
            if q["name"] == "engagements"] == [0]
    assert "loads:" not in nodes["solo"].stderr_text()
