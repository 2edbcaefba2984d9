"""A cluster of three nodes in two replica groups on one `seqctl broker` (PRODUCT.md, "A
cluster of nodes"): the map on every node (GET /cluster, GetClusterMap, seqctl cluster),
the same answers from every node with seqd-served-by naming an owner, a read forwarded
once and never twice, BatchGetSequences across owners in request order, a map entry
naming an address where nothing listens (the next replica answers), a peer that speaks
garbage, one that speaks HTTP/2 but answers a malformed gRPC message, and a second node
with a live node's id refused at start."""
import json
import os
import re
import socket
import threading

import grpc
import pytest

import helpers
from cluster_helpers import (P, SLOW, Broker, cluster_map, get_with_md, nodes_by_id, owner_of,
                             partition_of_user, start_three)

G1, G2 = ["a", "b"], ["c"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    started = []

    def factory(**kw):
        wd = str(tmp / ("w%d" % len(started)))
        os.makedirs(wd, exist_ok=True)
        s = helpers.Seqd(wd, **kw)
        started.append(s)
        return s.start()

    broker = Broker()
    try:
        nodes = start_three(factory, broker, tmp)
        users = list(range(1, 301))
        now = helpers.now_ms()
        evs = [dict(user_id=u, time_ms=now - 60000 + k, event_type="click", item_id=u * 10 + k,
                    event_id="c-%d-%d" % (u, k)) for u in users for k in range(3)]
        # one newest event on every partition, so that every node's stream watermark is it
        sentinels = {}
        for u in range(1000, 2000):
            sentinels.setdefault(partition_of_user(u, P), u)
        evs += [dict(user_id=u, time_ms=now, event_type="click", item_id=1) for u in sentinels.values()]
        nodes[0].producer().events(evs)
        for s in nodes:
            for u in sentinels.values():
                s.wait_item(u, 1)
            for u in users[::37]:
                s.wait_visible(u, 3)
        yield broker, nodes, users, tmp, factory
    finally:
        for s in started:
            s.kill()
        broker.stop()


def without_as_of(r):
    r = type(r).FromString(r.SerializeToString())
    r.as_of_ms = 0
    return r.SerializeToString()


def test_map_everywhere(cluster):
    broker, nodes, users, tmp, factory = cluster
    for s in nodes:
        m = cluster_map(s)
        assert m["partitions"] == P and m["partitioner"] == "murmur2" and m["topic"] == "seqd.events"
        assert m["self"] == s.node_id
        ids = nodes_by_id(s)
        assert ids["c"]["partitions"] == list(range(P))
        assert ids["a"]["grpc"] == nodes[0].grpc and ids["b"]["admin"] == nodes[1].admin
        assert ids["a"]["fingerprint"] == ids["c"]["fingerprint"]
        assert ids["a"]["generations"] == {"engagements": 0, "short": 0}
    pb, pbg = helpers.stubs()[0], helpers.stubs()[1]

    def c_ready():
        cm = pbg.ClusterServiceStub(nodes[2].channel).GetClusterMap(pb.GetClusterMapRequest(),
                                                                      timeout=30)
        c = [n for n in cm.nodes if n.id == "c"]
        return cm if c and list(c[0].caught_up) == list(range(P)) and c[0].ready else None

    # A node republishes its record once a second: one published while c consumed the
    # fixture's events may still say "not ready" for that second (seen under TSan).
    cm = helpers.poll(c_ready, "c caught up and ready in GetClusterMap")
    assert cm.partitions == P and cm.partitioner == "murmur2"
    assert sorted(n.id for n in cm.nodes) == ["a", "b", "c"]
    byid = {n.id: n for n in cm.nodes}
    assert sorted(list(byid["a"].partitions) + list(byid["b"].partitions)) == list(range(P))
    out = nodes[0].seqctl("cluster", check=True).stdout
    assert "a " in out and "g2" in out and nodes[2].grpc in out, out
    assert "0-%d" % (P - 1) in out, out  # c holds every partition: one range, not a list


def test_equal_answers_and_served_by(cluster):
    broker, nodes, users, tmp, factory = cluster
    for u in users:
        answers = []
        owner = owner_of(nodes, G1, u)
        for s in nodes:
            r, md = get_with_md(s, u)
            answers.append(without_as_of(r))
            assert md["seqd-served-by"] == ("c" if s is nodes[2] else owner), (u, md)
        assert answers[0] == answers[1] == answers[2], u
        assert len(helpers.pb().GetSequenceResponse.FromString(answers[0]).item_ids) == 3


def test_forwarded_once_never_twice(cluster):
    broker, nodes, users, tmp, factory = cluster
    a, b = nodes[0], nodes[1]
    u = next(u for u in users if owner_of(nodes, G1, u) == "b")
    before = b.metric("seqd_forward_refused_total")
    fwd_a = a.metric("seqd_forwarded_total")
    r, md = get_with_md(a, u)
    assert md["seqd-served-by"] == "b" and len(r.item_ids) == 3
    assert a.metric("seqd_forwarded_total") == fwd_a + 1
    # a call marked forwarded, at a node that does not hold the partition: refused, not
    # forwarded again
    with pytest.raises(grpc.RpcError) as e:
        get_with_md(a, u, metadata=[("seqd-forwarded", "1")])
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "partition %d" % partition_of_user(u, P) in e.value.details()
    assert a.metric("seqd_forwarded_total") == fwd_a + 1
    assert b.metric("seqd_forward_refused_total") == before


def test_seqctl_get_prints_served_by(cluster):
    """seqctl get names the node that read storage (the seqd-served-by trailer): the owner
    for a call forwarded by a node that does not hold the user, the node itself for one
    it holds; in the table (a last line) and in --json."""
    broker, nodes, users, tmp, factory = cluster
    a, c = nodes[0], nodes[2]
    u = next(u for u in users if owner_of(nodes, G1, u) == "b")
    out = a.seqctl("get", u, "engagements", check=True).stdout
    assert out.splitlines()[-1] == "served_by b", out
    doc = json.loads(a.seqctl("get", u, "engagements", "--json", check=True).stdout)
    assert doc["served_by"] == "b" and len(doc["events"]) == 3, doc
    out = c.seqctl("get", u, "engagements", check=True).stdout
    assert out.splitlines()[-1] == "served_by c", out


def test_batch_across_owners_in_request_order(cluster):
    broker, nodes, users, tmp, factory = cluster
    pb = helpers.pb()
    order = users[::-3][:60]
    for s in nodes:
        resp, call = s.stub().BatchGetSequences.with_call(pb.BatchGetSequencesRequest(
            requests=[pb.GetSequenceRequest(user_id=u, sequence="engagements") for u in order]),
            timeout=30)
        assert [r.user_id for r in resp.responses] == order
        for u, r in zip(order, resp.responses):
            assert sorted(r.item_ids) == [u * 10, u * 10 + 1, u * 10 + 2]
        served = dict(call.trailing_metadata())["seqd-served-by"].split(",")
        assert sorted(served) == (["c"] if s is nodes[2] else ["a", "b"])
    # an entry that fails names its index in the whole request, wherever it was read
    bad = [pb.GetSequenceRequest(user_id=u, sequence="engagements") for u in order[:5]]
    bad.append(pb.GetSequenceRequest(user_id=order[5], sequence="nope"))
    with pytest.raises(grpc.RpcError) as e:
        nodes[0].stub().BatchGetSequences(pb.BatchGetSequencesRequest(requests=bad), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details().startswith("requests[5]: "), e.value.details()


def h2_liar(lsock, stop):
    """Serves HTTP/2 on lsock: every call gets 200, grpc-status 0 and served-by '0h2liar',
    but its gRPC message prefix announces 100 bytes where 3 follow (the prefix split over
    two DATA frames, as a peer may send it)."""
    import h2.config
    import h2.connection
    import h2.events

    def serve(c):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        c.sendall(conn.data_to_send())
        c.settimeout(0.2)
        while not stop.is_set():
            try:
                data = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if isinstance(ev, h2.events.StreamEnded):
                    sid = ev.stream_id
                    conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                    conn.send_data(sid, b"\x00\x00\x00")
                    conn.send_data(sid, b"\x00\x64abc")
                    conn.send_headers(sid, [("grpc-status", "0"), ("seqd-served-by", "0h2liar")],
                                      end_stream=True)
            c.sendall(conn.data_to_send())
        c.close()

    accept_loop(lsock, stop, lambda c: threading.Thread(target=serve, args=(c,), daemon=True).start())


def accept_loop(lsock, stop, handle):
    """Accepts on lsock until stop is set, handing each connection to handle(c)."""
    lsock.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = lsock.accept()
        except OSError:
            continue
        handle(c)


def test_dead_address_in_map_and_garbage_peer(cluster):
    """Entries of group g1 claiming every partition caught up, sorted before the real
    nodes (holders are tried in id order): one naming an address where nothing listens,
    one whose connect never completes (a listener with a full accept queue: the kernel
    drops the SYNs, as a dead host's network does), one that answers garbage, one that
    speaks HTTP/2 but answers a gRPC message shorter than its prefix says (taken as the
    answer, the read would say served by 0h2liar), one that accepts and never answers.
    Reads at a still succeed within their deadline (each try but the last gets half the
    time left, then the next replica)."""
    broker, nodes, users, tmp, factory = cluster
    from confluent_kafka import Producer
    dead = helpers.free_port()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    garbage_port = lsock.getsockname()[1]
    h2sock = socket.socket()
    h2sock.bind(("127.0.0.1", 0))
    h2sock.listen(16)
    h2_port = h2sock.getsockname()[1]
    sink = socket.socket()  # accepts (the kernel does) and never reads or answers
    sink.bind(("127.0.0.1", 0))
    sink.listen(64)
    sink_port = sink.getsockname()[1]
    hole = socket.socket()  # backlog 0, filled: further connects hang in SYN_SENT
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    hole_port = hole.getsockname()[1]
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", hole_port))
        fillers.append(f)
    stop = threading.Event()

    def answer_garbage(c):
        c.sendall(b"HTTP/1.1 200 OK\r\n\r\nnot http2 at all" * 10)
        c.close()

    def garbage():
        accept_loop(lsock, stop, answer_garbage)
    p = Producer({"bootstrap.servers": broker.brokers})

    def publish():
        import json as j
        while not stop.is_set():
            for nid, port in (("0ghost", dead), ("0h2liar", h2_port), ("0hole", hole_port),
                              ("0liar", garbage_port),
                              ("0sink", sink_port)):
                rec = {"v": 1, "id": nid, "group": "g1", "grpc": "127.0.0.1:%d" % port,
                       "admin": "127.0.0.1:1", "incarnation": "x", "fingerprint": "0",
                       "n_partitions": P, "partitions": list(range(P)),
                       "caught_up": list(range(P)), "ready": True,
                       "heartbeat_ms": helpers.now_ms(), "generations": {}}
                p.produce("seqd.events.seqd-cluster", key=nid, value=j.dumps(rec), partition=0)
            p.flush(5)
            stop.wait(0.5)
    threads = [threading.Thread(target=garbage), threading.Thread(target=publish),
               threading.Thread(target=h2_liar, args=(h2sock, stop))]
    for t in threads:
        t.start()
    try:
        ghosts = {"0ghost", "0h2liar", "0hole", "0liar", "0sink"}
        helpers.poll(lambda: ghosts <= set(nodes_by_id(nodes[0])), "ghosts in a's map")
        retries = nodes[0].metric("seqd_forward_retries_total")
        remote = [u for u in users if owner_of(nodes, G1, u) == "b"][:5]
        for u in remote:
            r, md = get_with_md(nodes[0], u, timeout=4 * SLOW)
            assert len(r.item_ids) == 3
            assert md["seqd-served-by"] == "b", md
        assert nodes[0].metric("seqd_forward_retries_total") >= retries + 5 * len(remote)
    finally:
        stop.set()
        for t in threads:
            t.join()
        lsock.close()
        h2sock.close()
        sink.close()
        hole.close()
        for f in fillers:
            f.close()
    # a leave record (null value) takes them out at once
    for nid in ghosts:
        p.produce("seqd.events.seqd-cluster", key=nid, value=None, partition=0)
    p.flush(5)
    helpers.poll(lambda: not ghosts & set(nodes_by_id(nodes[0])), "ghosts gone")


def test_second_node_with_a_live_id_refused(cluster):
    broker, nodes, users, tmp, factory = cluster
    wd = tmp / "twin"
    wd.mkdir()
    s = helpers.Seqd(str(wd), brokers=broker.brokers,
                     args=["--group", "g2", "--instance-id", "c"])
    try:
        s.start(expect_ready=False)
        try:
            rc = s.wait_exit()
        except AssertionError:
            raise AssertionError("the twin did not exit: " + s.stderr_text())
        err = s.stderr_text()
        assert rc == 2, err
        assert "another live node already uses the id c" in err and nodes[2].grpc in err, err
    finally:
        s.kill()
    assert nodes_by_id(nodes[0])["c"]["grpc"] == nodes[2].grpc


def test_console_cluster_page(cluster, tmp_path):
    """The console's Cluster page (issue 12) at node a, in headless Chromium: one section
    per group with its nodes, and a partitions grid whose every cell names the node that
    holds it in /cluster, coloured caught up."""
    from test_ui import rendered  # the browser harness (skips without chromium)
    _, nodes, _, _, _ = cluster
    a = nodes[0]
    dom = rendered(a, tmp_path, "/ui/cluster")
    assert 'id="single-node"' not in dom
    held = {}
    for n in cluster_map(a)["nodes"]:
        for p in n["partitions"]:
            held.setdefault(n["group"], {})[p] = n["id"]
    for g, members in (("g1", G1), ("g2", G2)):
        sec = re.search(r'<section data-group="%s">(.*?)</section>' % g, dom, re.S).group(1)
        assert sorted(re.findall(r'<tr data-node="([^"]+)">', sec)) == members
        cells = re.findall(r'<div class="cell caught"[^>]*><b>p(\d+)</b><span>([^<]+)</span>', sec)
        assert {int(p): nid for p, nid in cells} == held[g], (g, cells)
