"""The counts of a cluster-wide load and of its dry run (PRODUCT.md "Batches in a cluster":
counts summed over one holder of each partition, not once per replica group), on three
nodes in two replica groups (a, b in g1; c in g2) and, for reference, a single node
consuming the same topic: the same batch over the same stream answers the same users,
events, files, users_emptied and stream_events_hidden everywhere, and a dry run on the
cluster changes nothing on any node.

users_emptied and stream_events_hidden depend on the stream data of every partition,
which no node of g1 holds alone: a receiver counting only its own partitions (the bug this
guards) answers about half of them."""
import json
import os
import subprocess

import grpc
import pytest
from confluent_kafka import Consumer, TopicPartition

import helpers
from cluster_helpers import (P, SLOW, Broker, get_with_md, nodes_by_id, partition_of_user,
                             settled, start_batch_node)

HOUR = helpers.HOUR
B = (helpers.now_ms() // HOUR) * HOUR - 6 * 24 * HOUR
A = B - 24 * HOUR
GROUPS = {"g1": ["a", "b"], "g2": ["c"]}
BATCH_USERS = list(range(1, 41))      # in the batch
STREAM_USERS = list(range(1, 21)) + list(range(41, 61))  # stream events in [A, B)
GEN = 7


def stream_events():
    """Two or three stream events per user inside [A, B), one recent event of user 1."""
    evs = [dict(user_id=u, time_ms=A + (u * 7919 + k * 3600 * 1000) % (24 * HOUR),
                event_type="click", item_id=500 + k, event_id="s-%d-%d" % (u, k))
           for u in STREAM_USERS for k in range(2 + u % 2)]
    return evs + [dict(user_id=1, time_ms=helpers.now_ms() - 60000, event_type="click",
                       item_id=600, event_id="s-recent")]


def sentinels():
    """One user per partition, with an event after the others: seen = partition consumed."""
    out, u = {}, 100000
    while len(out) < P:
        out.setdefault(partition_of_user(u, P), u)
        u += 1
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ccounts")
    root = str(tmp / "root")
    os.makedirs(root)
    broker = Broker()
    brokers = [broker]
    nodes = {}
    try:
        for nid, g in (("a", "g1"), ("b", "g1"), ("c", "g2")):
            s = start_batch_node(tmp, nid, broker.brokers, root,
                                 ["--group", g, "--instance-id", nid])
            s.node_id = nid
            nodes[nid] = s
        cluster = list(nodes.values())
        helpers.poll(lambda: settled(cluster, GROUPS), "the map settled on every node")
        # its own broker: a node on the cluster's would be in its map (holding every
        # partition, as a node outside any group), which settled() does not expect
        # (test_cluster_load_nonmember.py has one there)
        brokers.append(Broker())
        solo = start_batch_node(tmp, "solo", brokers[1].brokers, root)  # no group: all, alone
        nodes["solo"] = solo
        sent = sentinels()
        for s in (nodes["a"], solo):  # the same events on both brokers
            prod = s.producer()
            prod.events(stream_events())
            prod.events([dict(user_id=u, time_ms=helpers.now_ms() - 1000, event_type="click",
                              item_id=999, event_id="sentinel-%d" % u) for u in sent.values()])
        # every node consumed its partitions up to the sentinels (read where held)
        for nid, s in nodes.items():
            held = set(range(P)) if nid == "solo" else set(nodes_by_id(s)[nid]["partitions"])
            for p in held:
                helpers.poll(lambda: 999 in get_with_md(
                    s, sent[p], metadata=[("seqd-forwarded", "1")])[0].item_ids,
                    "node %s consumed partition %d" % (nid, p))
        yield tmp, root, nodes, brokers
    finally:
        for s in nodes.values():
            s.kill()
        for b in brokers:
            b.stop()


def loads_offset(brokers):
    """The end of <topic>.seqd-loads: how many records it holds."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "t-loads"})
    try:
        return c.get_watermark_offsets(TopicPartition("seqd.events.seqd-loads", 0),
                                       timeout=10)[1]
    finally:
        c.close()


def build(tmp, root, defn, partitions=P, name=None):
    out = os.path.join(root, name or "g%d" % GEN)
    src = os.path.join(str(tmp), "batch.jsonl")
    with open(src, "w") as f:
        for u in BATCH_USERS:
            for k in range(1 + u % 3):
                f.write(json.dumps({"user_id": u, "event_time_ms": A + (u * 104729 + k) %
                                    (24 * HOUR), "event_type": "click",
                                    "item_id": 1000 + k, "event_id": "b-%d-%d" % (u, k)}) + "\n")
    r = subprocess.run([helpers.SEQCTL_BIN, "build", "--definition", defn, "--sequence",
                        "engagements", "--start-ms", str(A), "--end-ms", str(B), "--generation",
                        str(GEN), "--out", out] +
                       (["--partitions", str(partitions)] if partitions else []) + [src],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = []
    for d, _, fs in sorted(os.walk(out)):
        got += [os.path.join(d, f) for f in sorted(fs) if f.endswith(".sst")]
    return got, json.loads(r.stdout)


def load(s, paths, dry_run=False):
    req = helpers.pb().LoadBatchRequest(sequence="engagements", start_ms=A, end_ms=B,
                                        generation=GEN, sst_paths=paths, dry_run=dry_run)
    r = s.stub().LoadBatch(req, timeout=60 * SLOW)
    return (r.generation, r.files, r.users, r.events, r.users_emptied, r.stream_events_hidden)


def state(nodes):
    return {nid: (json.dumps(s.status()["sequences"], sort_keys=True),
                  [list(get_with_md(s, u)[0].item_ids) for u in (1, 5, 41, 50)])
            for nid, s in nodes.items()}


def test_cluster_load_and_dry_run_count_like_a_single_node(env):
    tmp, root, nodes, brokers = env
    paths, rep = build(tmp, root, nodes["a"].definition_path)
    in_window = sum(1 for e in stream_events() if A <= e["time_ms"] < B)
    # users 41-60 have stream events in the window and are not in the batch: emptied;
    # every stream event in the window is hidden
    want = (GEN, len(paths), len(BATCH_USERS), rep["events"], 20, in_window)
    assert load(nodes["solo"], paths, dry_run=True) == want

    before = state(nodes)
    for nid in "abc":  # a dry run sent to any node counts over the whole cluster
        assert load(nodes[nid], paths, dry_run=True) == want, nid
    assert state(nodes) == before  # and changes nothing anywhere

    assert load(nodes["a"], paths) == want  # the load itself, received by a node of g1
    assert load(nodes["solo"], paths) == want
    for nid in "abc":
        assert nodes_by_id(nodes[nid])[nid]["generations"]["engagements"] == GEN
    # again: an OK no-op with the whole batch's counts and nothing changed
    assert load(nodes["b"], paths) == want[:4] + (0, 0)


def test_restart_ingests_nothing_again(env):
    """A node restarted after the load neither fills again (it stored up to where every
    partition of it holds every load's part) nor answers differently."""
    tmp, root, nodes, brokers = env
    c = nodes["c"]
    before = [list(get_with_md(c, u)[0].item_ids) for u in (1, 5, 41, 50)]
    c.kill()
    c.start()
    helpers.poll(lambda: settled([nodes[n] for n in "abc"], GROUPS), "the map settled again")
    st = c.status()["loads"]
    assert st["filled_files"] == 0 and not st["filling"], st
    assert "loads: filled" not in c.stderr_text()
    assert [list(get_with_md(c, u)[0].item_ids) for u in (1, 5, 41, 50)] == before
    assert nodes_by_id(c)["c"]["generations"]["engagements"] == GEN


def test_unpartitioned_batch_refused_where_a_node_holds_only_some(env):
    tmp, root, nodes, brokers = env
    paths, _ = build(tmp, root, nodes["a"].definition_path, partitions=0, name="flat")
    before, offset = state(nodes), loads_offset(brokers[0].brokers)
    for dry in (True, False):
        with pytest.raises(grpc.RpcError) as e:
            load(nodes["c"], paths, dry_run=dry)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value.details()
        d = e.value.details()  # a and b (g1) each hold half; c holds all
        assert "without --partitions" in d and "and a, b hold only some" in d, d
    assert loads_offset(brokers[0].brokers) == offset
    assert state(nodes) == before


def test_unpartitioned_batch_in_a_group_of_one(env):
    """A cluster member alone in its group holds every partition: a batch built without
    --partitions loads there, through <topic>.seqd-loads, and a restart ingests nothing
    again."""
    tmp, root, nodes, brokers = env
    brokers.append(Broker())
    wd = str(tmp / "w-one")
    os.makedirs(wd)
    one = helpers.Seqd(wd, brokers=brokers[-1].brokers, data_dir=os.path.join(wd, "data"),
                       args=["--group", "g9", "--instance-id", "one", "--batch-root", root])
    one.start()
    one.node_id = "one"
    nodes["one"] = one
    helpers.poll(lambda: settled([one], {"g9": ["one"]}), "the map settled")
    paths, rep = build(tmp, root, one.definition_path, partitions=0, name="flat1")
    want = (GEN, len(paths), len(BATCH_USERS), rep["events"], 0, 0)
    assert load(one, paths, dry_run=True) == want
    assert nodes_by_id(one)["one"]["generations"]["engagements"] == 0
    offset = loads_offset(brokers[-1].brokers)
    assert load(one, paths) == want
    assert loads_offset(brokers[-1].brokers) == offset + 1  # the commit went through the log
    assert nodes_by_id(one)["one"]["generations"]["engagements"] == GEN
    items = [list(one.get(u).item_ids) for u in BATCH_USERS[::5]]
    assert all(items)
    one.kill()
    one.start()
    helpers.poll(lambda: settled([one], {"g9": ["one"]}), "the map settled again")
    assert one.status()["loads"]["filled_files"] == 0
    assert [list(one.get(u).item_ids) for u in BATCH_USERS[::5]] == items


def fnv1a64(path):
    h = 0xcbf29ce484222325
    with open(path, "rb") as f:
        for b in f.read():
            h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def test_forged_record_with_sums_cannot_ingest_another_generation(env):
    """A node does not scan again, entry by entry, a file whose bytes have the size and
    hash the record says the receiver verified; it still checks that the file's keys are of
    the record's generation. A record forged by someone who can produce to the topic, with
    the true sums of files of generation 50 relabelled 51 in their manifests, is refused by
    every node: nothing of it is ingested or committed."""
    tmp, root, nodes, brokers = env
    out = os.path.join(root, "g50")
    src = os.path.join(str(tmp), "g50.jsonl")
    with open(src, "w") as f:
        for u in BATCH_USERS:
            f.write(json.dumps({"user_id": u, "event_time_ms": A + u, "event_type": "click",
                                "item_id": 5000 + u, "event_id": "f-%d" % u}) + "\n")
    r = subprocess.run([helpers.SEQCTL_BIN, "build", "--definition",
                        nodes["a"].definition_path, "--sequence", "engagements", "--start-ms",
                        str(A), "--end-ms", str(B), "--generation", "50", "--partitions",
                        str(P), "--out", out, src], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for d, _, fs in os.walk(out):  # relabel: the manifests say 51, the files hold 50
        for name in fs:
            if name in ("manifest.json", "batch.json"):
                p = os.path.join(d, name)
                with open(p) as f:
                    m = json.load(f)
                m["generation"] = 51
                for fe in m.get("files", []):  # FNV-1a 64 (as batches built before xxh3)
                    fe.pop("xxh3_64")
                    fe["fnv1a64"] = "%016x" % fnv1a64(os.path.join(d, fe["name"]))
                with open(p, "w") as f:
                    json.dump(m, f)
    paths = []
    for d, _, fs in sorted(os.walk(out)):
        paths += [os.path.join(d, f) for f in sorted(fs) if f.endswith(".sst")]
    rec = {"v": 1, "op": "load", "sequence": "engagements", "node": "x", "at_ms": 1,
           "generation": 51, "start_ms": A, "end_ms": B, "partitions": P, "paths": paths,
           "sums": [[os.path.getsize(p), "%016x" % fnv1a64(p)] for p in paths]}
    offset = loads_offset(brokers[0].brokers)
    from confluent_kafka import Producer
    prod = Producer({"bootstrap.servers": brokers[0].brokers})
    prod.produce("seqd.events.seqd-loads", value=json.dumps(rec).encode(), partition=0)
    assert prod.flush(30) == 0
    cluster = [nodes[n] for n in "abc"]
    helpers.poll(lambda: all(nodes_by_id(s)[s.node_id]["loads"] > offset for s in cluster),
                 "every node went past the forged record")
    for s in cluster:
        assert nodes_by_id(s)[s.node_id]["generations"]["engagements"] == GEN
        assert "keys outside its sequence and generation" in s.stderr_text(), s.node_id
        assert 5000 + BATCH_USERS[0] not in get_with_md(s, BATCH_USERS[0])[0].item_ids


def test_expired_dry_runs_are_skipped_without_reading_a_file(env):
    """A dry run's record is only of use while its receiver waits: past its expires_ms (or,
    written by an older receiver without one, SEQ_LOADS_DRY_RUN_TTL_MS after its at_ms) a
    node skips it without reading a file, so the dry runs the log keeps cost a node that
    reads them again nothing (a node that applied them verified every path: here a missing
    file, refused, logged "refused here"). A dry run that has not expired is still applied
    (the tests above: every dry run's counts)."""
    tmp, root, nodes, brokers = env
    base = {"v": 1, "op": "dry_run", "sequence": "engagements", "node": "x",
            "generation": GEN + 100, "start_ms": A, "end_ms": B, "partitions": P,
            "paths": [os.path.join(root, "nowhere", "partition-%05d" % p, "part-0.sst")
                      for p in range(P)]}
    old = dict(base, at_ms=1)                             # an older receiver's, long ago
    expired = dict(base, at_ms=helpers.now_ms() - 5000, expires_ms=helpers.now_ms() - 1000)
    offset = loads_offset(brokers[0].brokers)
    from confluent_kafka import Producer
    prod = Producer({"bootstrap.servers": brokers[0].brokers})
    for rec in (old, expired):
        prod.produce("seqd.events.seqd-loads", value=json.dumps(rec).encode(), partition=0)
    assert prod.flush(30) == 0
    cluster = [nodes[n] for n in "abc"]
    helpers.poll(lambda: all(nodes_by_id(s)[s.node_id]["loads"] >= offset + 2 for s in cluster),
                 "every node went past the two records")
    for s in cluster:
        err = s.stderr_text()
        for o in (offset, offset + 1):
            assert "dry run of engagements at offset %d skipped: expired" % o in err, s.node_id
            assert "at offset %d refused here" % o not in err, s.node_id
