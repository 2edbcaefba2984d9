"""Caught up *with a gap* (PRODUCT.md "A node that acquires a partition"): a node that
begins reading a partition whose Kafka log no longer reaches back (older messages gone)
to the end of the newest batch in effect, or with no batch to retention, reports from
when it holds that partition's stream, in /cluster, GetClusterMap, /metrics, /status and
`seqctl cluster`; a partition whose log is whole has no gap.

The log is cut with the mock broker's own bound (librdkafka's mock cluster keeps at most
5 MiB per partition and drops its oldest message sets past that; it has no DeleteRecords):
~900 KB filler messages produced one per message set push the partition's first events
out of the log. The fillers carry chosen Kafka timestamps, so the oldest message left
(what the node holds the stream from) has a known time, after or before the batch's end.

One node of group g1 (a cluster member: --group, --instance-id) starts after the cuts and
acquires all 4 partitions: X (cut, oldest message left after the batch's end), Y (cut,
oldest message left before the batch's end but within retention), W (cut, oldest message
left older than retention: no gap) and Z (whole log).
Before any batch both X and Y have a gap (retention 90 days reaches further back); a
batch whose range ends at B covers Y's; a restart keeps X's (stored with the partition);
a second member of g1 that takes a share of the partitions reads them afresh and reports
X's gap if X is its now (a drops what it handed over, and its stored log start with it);
a later batch whose range reaches past X's time covers it."""
import json
import os
import re
import subprocess
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

import helpers
from cluster_helpers import SLOW, Broker, nodes_by_id, partition_of_user

P = 4
HOUR = helpers.HOUR
B = (helpers.now_ms() // HOUR) * HOUR - 6 * 24 * HOUR   # the first batch's end
A = B - 24 * HOUR                                        # batch ranges start here
TX = B + 2 * HOUR      # Kafka timestamps of X's fillers: after B
TY = B - 2 * HOUR      # Y's: before B, within the 90 days of retention
TW = B - 100 * 24 * HOUR   # W's: beyond retention
TOPIC = "seqd.events"
FILLER = b"\xff" * 900000   # not an Event: kept aside as malformed, never applied


def users_of(p, n):
    return [u for u in range(1, 10000) if partition_of_user(u, P) == p][:n]


def produce(prod, p, user, t_ms, ts=None):
    ev = helpers.make_event(user, t_ms, "click", item_id=user * 100 + t_ms % 97)
    kw = {"timestamp": ts} if ts else {}
    prod.produce(TOPIC, key=str(user).encode(), value=ev.SerializeToString(), partition=p, **kw)
    assert prod.flush(60) == 0


def cut_log(prod, p, ts):
    """Events, then fillers (one message set each: a flush after every one) stamped ts+i,
    until the mock broker's 5 MiB bound drops the partition's first message sets."""
    for u in users_of(p, 3):
        produce(prod, p, u, A + HOUR)
    for i in range(8):
        prod.produce(TOPIC, key=b"filler", value=FILLER, partition=p, timestamp=ts + i)
        assert prod.flush(60) == 0


def log_start(brokers, p):
    """(offset, Kafka timestamp) of the oldest message the log still holds."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "t-gap-%d" % p,
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                return m.offset(), m.timestamp()[1]
        raise AssertionError("no message read from partition %d" % p)
    finally:
        c.close()


class Node:
    def __init__(self, tmp, brokers, nid):
        self.wd = str(tmp / ("w-" + nid))
        self.root = str(tmp / "root")
        os.makedirs(self.wd)
        os.makedirs(self.root, exist_ok=True)
        self.brokers, self.nid = brokers, nid
        self.s = None

    def start(self):
        self.s = helpers.Seqd(self.wd, definition=helpers.EXAMPLE_DEFINITION,
                              brokers=self.brokers,
                              args=["--group", "g1", "--instance-id", self.nid, "--batch-root",
                                    self.root])
        self.s.start()
        return self.s


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gap")
    broker = Broker(partitions=P)
    node, nodes = None, []
    try:
        X, Y, Z, W = 1, 2, 0, 3
        prod = Producer({"bootstrap.servers": broker.brokers, "linger.ms": 0,
                         "message.max.bytes": 1000000, "message.timeout.ms": 60000})
        cut_log(prod, X, TX)
        cut_log(prod, Y, TY)
        cut_log(prod, W, TW)
        for u in users_of(Z, 3):
            produce(prod, Z, u, helpers.now_ms() - HOUR)
        for p in (X, Y, W):  # fresh events after the cut, as a live stream has
            for u in users_of(p, 2):
                produce(prod, p, u, helpers.now_ms() - HOUR)
        starts = {p: log_start(broker.brokers, p) for p in (X, Y, Z, W)}
        # the premise: X, Y and W lost their first messages, Z did not
        assert starts[X][0] > 0 and starts[Y][0] > 0 and starts[W][0] > 0, starts
        assert starts[Z][0] == 0, starts
        assert TX <= starts[X][1] < TX + 8 and TY <= starts[Y][1] < TY + 8, starts
        assert TW <= starts[W][1] < TW + 8, starts
        node = Node(tmp, broker.brokers, "a")
        nodes.append(node)
        node.start()
        yield dict(broker=broker, node=node, nodes=nodes, tmp=tmp, X=X, Y=Y, Z=Z, W=W,
                   from_x=starts[X][1], from_y=starts[Y][1], from_w=starts[W][1])
    finally:
        for n in nodes:
            if n.s:
                n.s.kill()
        broker.stop()


def group_gaps(s, ids):
    """{partition: stream_from_ms} over the map's nodes (group g1) once the map at s lists
    exactly ids, each ready and caught up on what it holds, all P held; else None."""
    m = nodes_by_id(s)
    if set(m) != set(ids):
        return None
    held, gaps = [], {}
    for e in m.values():
        if sorted(e["caught_up"]) != sorted(e["partitions"]) or not e["ready"]:
            return None
        held += e["partitions"]
        gaps.update({g["partition"]: g["stream_from_ms"] for g in e.get("gaps", [])})
    return gaps if sorted(held) == list(range(P)) else None


def wait_gaps(s, want, ids=("a",)):
    helpers.poll(lambda: group_gaps(s, ids) == want,
                 "%s caught up with gaps %s (map: %s)" % (ids, want, nodes_by_id(s)))


def metric_samples(s, name):
    code, body = s.http("/metrics")
    assert code == 200
    out = {}
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def build_and_load(st, gen, end_ms):
    s, root = st["node"].s, st["node"].root
    users = users_of(st["Y"], 2) + users_of(st["X"], 2) + users_of(st["Z"], 1)
    src = os.path.join(root, "..", "g%d.jsonl" % gen)
    with open(src, "w") as f:
        for u in users:
            f.write(json.dumps({"user_id": u, "event_time_ms": A + 3 * HOUR,
                                "event_type": "click", "item_id": gen * 1000 + u}) + "\n")
    out = os.path.join(root, "g%d" % gen)
    r = subprocess.run([helpers.SEQCTL_BIN, "build", "--definition", s.definition_path,
                        "--sequence", "engagements", "--start-ms", str(A), "--end-ms",
                        str(end_ms), "--generation", str(gen), "--partitions", str(P),
                        "--out", out, src], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs
                   if f.endswith(".sst"))
    req = helpers.pb().LoadBatchRequest(sequence="engagements", start_ms=A, end_ms=end_ms,
                                        generation=gen, sst_paths=paths)
    s.stub().LoadBatch(req, timeout=60 * SLOW)


def test_gap_reported_where_the_log_no_longer_reaches_back(setup):
    s, X, Y = setup["node"].s, setup["X"], setup["Y"]
    # no batch yet: both cut logs start within retention (90 days): both are gaps
    want = {X: setup["from_x"], Y: setup["from_y"]}
    wait_gaps(s, want)
    # /status: the same per partition, and the log start (W's is beyond retention: no gap)
    parts = {p["partition"]: p for p in s.status()["stream"]["partitions"]}
    starts = dict(want)
    starts[setup["W"]] = setup["from_w"]
    for p in range(P):
        assert parts[p]["gap_from_ms"] == want.get(p, 0), parts[p]
        assert parts[p]["log_from_ms"] == starts.get(p, 0), parts[p]
        assert parts[p]["caught_up"], parts[p]
    # /metrics: the count, and per partition the time (s) the stream is held from
    assert s.metric("seqd_partitions_with_gap") == 2
    got = metric_samples(s, "seqd_partition_stream_from_seconds")
    for p in range(P):
        key = 'seqd_partition_stream_from_seconds{partition="%d"}' % p
        assert got[key] == pytest.approx(want.get(p, 0) / 1000.0), (key, got)
    # GetClusterMap: the parallel arrays
    pb, pbg = helpers.stubs()[0], helpers.stubs()[1]
    s.stub()  # opens s.channel
    cm = pbg.ClusterServiceStub(s.channel).GetClusterMap(pb.GetClusterMapRequest(), timeout=30)
    (n,) = [n for n in cm.nodes if n.id == "a"]
    assert dict(zip(n.gap_partitions, n.gap_from_ms)) == want
    assert sorted(n.caught_up) == list(range(P))  # caught up, with a gap
    # seqctl cluster: a line per gap, naming node, partition and time
    out = s.seqctl("cluster", check=True).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith("caught up with a gap")]
    assert len(lines) == 2, out
    for p, ms in want.items():
        sec = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
        when = "%s.%03dZ" % (sec, ms % 1000)
        assert any("node a partition %d holds the stream from %s" % (p, when) in ln
                   for ln in lines), (p, when, out)


def test_console_marks_the_gaps(setup, tmp_path):
    """The console's Cluster page (headless Chromium): a gap partition's cell says so."""
    from test_ui import rendered  # the browser harness (skips without chromium)
    dom = rendered(setup["node"].s, tmp_path, "/ui/cluster")
    cells = dict(re.findall(r'<div class="cell caught"[^>]*><b>p(\d+)</b><span>([^<]+)</span>', dom))
    gap = {str(setup["X"]), str(setup["Y"])}
    assert cells == {str(p): "a (gap)" if str(p) in gap else "a" for p in range(P)}, cells
    assert "caught up with a gap: holds the stream from" in dom


def test_a_batch_reaching_past_the_log_start_ends_the_gap(setup):
    s, X, Y = setup["node"].s, setup["X"], setup["Y"]
    # a batch ending at B covers Y (its log starts before B), not X (after B)
    build_and_load(setup, 1, B)
    wait_gaps(s, {X: setup["from_x"]})
    assert s.metric("seqd_partitions_with_gap") == 1
    parts = {p["partition"]: p for p in s.status()["stream"]["partitions"]}
    assert parts[Y]["gap_from_ms"] == 0 and parts[Y]["log_from_ms"] == setup["from_y"]


def test_the_gap_survives_a_restart(setup):
    node, X = setup["node"], setup["X"]
    node.s.kill()
    s = node.start()
    wait_gaps(s, {X: setup["from_x"]})
    assert "messages before it are gone" not in s.stderr_text()  # known, not found again


def test_a_second_member_acquiring_a_cut_partition_reports_it(setup):
    """b joins g1 and takes a share of a's partitions (cooperative-sticky): b reads them
    afresh, so X, if it is b's now, is b's gap with the same time (the log start has not
    moved); a drops what it handed over, its stored log start with it."""
    a, X = setup["node"].s, setup["X"]
    nb = Node(setup["tmp"], setup["broker"].brokers, "b")
    setup["nodes"].append(nb)
    nb.start()
    wait_gaps(a, {X: setup["from_x"]}, ids=("a", "b"))
    m = nodes_by_id(a)
    gone = m["b"]["partitions"]
    assert gone and sorted(gone + m["a"]["partitions"]) == list(range(P)), m
    who = "b" if X in gone else "a"
    assert [g["partition"] for g in m[who]["gaps"]] == [X], m
    # what a handed over is dropped once b is caught up, and the log start with it
    def dropped():
        parts = {p["partition"]: p for p in a.status()["stream"]["partitions"]}
        return all(not parts[p]["held"] and parts[p]["log_from_ms"] == 0 for p in gone) and \
            a.metric("seqd_partitions_dropped_total") >= len(gone)
    helpers.poll(dropped, "a dropped partitions %s (%s)" % (gone, a.status()["stream"]))
    assert nb.s.metric("seqd_partitions_with_gap") == (1 if who == "b" else 0)


def test_a_later_batch_covering_the_log_start_clears_it(setup):
    s = setup["node"].s
    end = (setup["from_x"] // HOUR + 1) * HOUR
    build_and_load(setup, 2, end)
    wait_gaps(s, {}, ids=("a", "b"))
    assert s.metric("seqd_partitions_with_gap") == 0
    assert "caught up with a gap" not in s.seqctl("cluster", check=True).stdout
