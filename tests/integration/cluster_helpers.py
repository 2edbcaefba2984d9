"""A cluster on one machine for the cluster tests: a `seqctl broker` and seqd nodes in
consumer groups (--group, --instance-id), with helpers to read the map, call with
metadata, and wait until the map agrees with the nodes."""
import json
import os
import signal
import subprocess
import sys

import helpers

sys.path.insert(0, os.path.join(helpers.SOURCE, "clients", "python"))
from seqd_client.partition import partition_of_user  # noqa: E402,F401

P = 8
# Deadlines of calls in the tests (the product's are the caller's): scaled under the
# sanitizers, whose builds run several times slower.
SLOW = 4 if helpers.asan_build() or helpers.tsan_build() else 1


class Broker:
    def __init__(self, partitions=P):
        self.proc = subprocess.Popen([helpers.SEQCTL_BIN, "broker", "--partitions",
                                      str(partitions)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("brokers="), line
        self.brokers = line.split("=", 1)[1]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def start_node(factory, broker, node_id, group, tmp_path, **kw):
    return factory(brokers=broker.brokers, data_dir=str(tmp_path / ("data-" + node_id)),
                   args=["--group", group, "--instance-id", node_id] + list(kw.pop("args", [])),
                   **kw)


def start_batch_node(tmp, nid, brokers, root, args=()):
    """A node `nid` on brokers with its own work and data directories under tmp and
    `--batch-root root` (the loads tests' shared batch root), started."""
    wd = str(tmp / ("w-" + nid))
    os.makedirs(wd)
    s = helpers.Seqd(wd, brokers=brokers, data_dir=os.path.join(wd, "data"),
                     args=list(args) + ["--batch-root", root])
    s.start()
    return s


def start_three(factory, broker, tmp_path):
    """Nodes a and b in group g1, c in g2; returns [a, b, c] once the map has settled on
    every node (each node's .node_id set)."""
    nodes = []
    for nid, g in (("a", "g1"), ("b", "g1"), ("c", "g2")):
        s = start_node(factory, broker, nid, g, tmp_path)
        s.node_id = nid
        nodes.append(s)
    helpers.poll(lambda: settled(nodes, {"g1": ["a", "b"], "g2": ["c"]}),
                 "the map settled on every node")
    return nodes


def cluster_map(s):
    code, body = s.http("/cluster")
    assert code == 200, (code, body)
    return json.loads(body)


def nodes_by_id(s):
    return {n["id"]: n for n in cluster_map(s)["nodes"]}


def settled(nodes, groups):
    """True once every node's map lists every node, each group's nodes hold disjoint
    partitions covering all P, and everything is caught up."""
    for s in nodes:
        m = nodes_by_id(s)
        if set(m) != {n.node_id for n in nodes}:
            return False
        for g, members in groups.items():
            held = []
            for nid in members:
                e = m[nid]
                if e["caught_up"] != e["partitions"] or not e["ready"]:
                    return False
                held += e["partitions"]
            if sorted(held) != list(range(P)):
                return False
    return True


def owner_of(nodes, group_members, user):
    """The node of group_members that holds user's partition (by the first node's map)."""
    m = nodes_by_id(nodes[0])
    p = partition_of_user(user, P)
    for nid in group_members:
        if p in m[nid]["partitions"]:
            return nid
    raise AssertionError("no holder of partition %d in %s" % (p, group_members))


def get_with_md(s, user, metadata=(), timeout=30, **kw):
    """(response, trailing metadata dict) of GetSequence at s."""
    pb = helpers.pb()
    r, call = s.stub().GetSequence.with_call(
        pb.GetSequenceRequest(user_id=user, sequence="engagements", **kw), timeout=timeout,
        metadata=list(metadata))
    return r, dict(call.trailing_metadata())
