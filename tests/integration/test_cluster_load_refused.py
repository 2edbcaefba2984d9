"""A cluster dry run that a holder refused where its receiver did not (server/loads.c
sum_impact): two nodes of one group (a, b) splitting the partitions, b with a batch root
that does not show the batch yet (a shared mount lagging behind: a file NOT_FOUND there).
Dry runs are never retried, so b refuses its record and counts nothing; the receiver must
not answer the counts of a's partitions alone as the whole cluster's (the bug this
guards: an OK with users_emptied and stream_events_hidden silently short), but UNAVAILABLE
naming b's partitions. Once b's root shows the batch, the same dry run answers the whole
batch's counts, changes nothing, and the nodes log it as checked (not "in effect")."""
import os
import shutil

import grpc
import pytest

import helpers
from cluster_helpers import P, Broker, nodes_by_id, settled
from test_cluster_load_counts import BATCH_USERS, GEN, build, load

GROUPS = {"g1": ["a", "b"]}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crefused")
    roots = {n: str(tmp / ("root-" + n)) for n in "ab"}
    broker = Broker()
    nodes = {}
    try:
        for nid in "ab":
            os.makedirs(roots[nid])
            wd = str(tmp / ("w-" + nid))
            os.makedirs(wd)
            s = helpers.Seqd(wd, brokers=broker.brokers, data_dir=os.path.join(wd, "data"),
                             args=["--group", "g1", "--instance-id", nid, "--batch-root",
                                   roots[nid]])
            s.start()
            s.node_id = nid
            nodes[nid] = s
        helpers.poll(lambda: settled(list(nodes.values()), GROUPS),
                     "the map settled on every node")
        yield tmp, roots, nodes
    finally:
        for s in nodes.values():
            s.kill()
        broker.stop()


def generations(nodes):
    return {nid: nodes_by_id(s)[nid]["generations"]["engagements"] for nid, s in nodes.items()}


def test_dry_run_a_holder_refused_is_unavailable_naming_its_partitions(env):
    tmp, roots, nodes = env
    a, b = nodes["a"], nodes["b"]
    paths, rep = build(tmp, roots["a"], a.definition_path)
    rel = [os.path.relpath(p, roots["a"]) for p in paths]  # under each node's own root
    b_parts = sorted(nodes_by_id(a)["b"]["partitions"])
    assert b_parts and len(b_parts) < P
    with pytest.raises(grpc.RpcError) as e:
        load(a, rel, dry_run=True)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
    d = e.value.details()
    assert "no holder of partitions %s counted the dry run's impact" % ", ".join(
        str(p) for p in b_parts) in d, d
    assert "committed" not in d, d  # a dry run commits nothing
    assert "refused here: NOT_FOUND" in b.stderr_text()
    assert generations(nodes) == {"a": 0, "b": 0}

    # b's mount shows the batch now: the same request counts the whole batch
    shutil.copytree(os.path.join(roots["a"], "g%d" % GEN), os.path.join(roots["b"], "g%d" % GEN))
    assert load(a, rel, dry_run=True) == (GEN, len(paths), len(BATCH_USERS), rep["events"], 0, 0)
    assert generations(nodes) == {"a": 0, "b": 0}
    for s in (a, b):
        err = s.stderr_text()
        assert "dry run of engagements generation %d (offset 1) checked here, nothing " \
            "changed" % GEN in err, s.node_id
        assert "in effect" not in err, s.node_id  # a dry run puts nothing in effect
