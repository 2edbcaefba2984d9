"""Replica groups on Kafka consumer groups (PRODUCT.md, "A cluster of nodes"): two nodes of
one --group split the topic's partitions (cooperative-sticky), each consuming only what it
holds, from the offsets stored with its data; a node of another group holds everything;
a restart with the same --instance-id keeps its partitions and its data; a node without
--instance-id or --advertise stays standalone and holds every partition at once."""
import json
import os
import signal
import subprocess
import sys

import helpers

sys.path.insert(0, os.path.join(helpers.SOURCE, "clients", "python"))
from seqd_client.partition import partition_of_user  # noqa: E402

P = 8


def start_broker():
    p = subprocess.Popen([helpers.SEQCTL_BIN, "broker", "--partitions", str(P)],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("brokers="), line
    return p, line.split("=", 1)[1]


def held(s):
    return sorted(p["partition"] for p in s.status()["stream"]["partitions"] if p["held"])


def test_group_splits_partitions_and_restart_keeps_them(seqd_factory, tmp_path):
    broker, brokers = start_broker()
    try:
        a = seqd_factory(brokers=brokers, args=["--group", "g1", "--instance-id", "a"],
                         data_dir=str(tmp_path / "a"))
        b = seqd_factory(brokers=brokers, args=["--group", "g1", "--instance-id", "b"])
        c = seqd_factory(brokers=brokers, args=["--group", "g2", "--instance-id", "c"])
        split = helpers.poll(lambda: (lambda x, y: (x, y) if x and y and
                                      sorted(x + y) == list(range(P)) else None)(held(a), held(b)),
                             "group g1 split between a and b")
        assert not set(split[0]) & set(split[1])
        helpers.poll(lambda: held(c) == list(range(P)), "g2's only node holds everything")
        users = [helpers.new_user() for _ in range(40)]
        now = helpers.now_ms()
        a.producer().events([dict(user_id=u, time_ms=now - 1000, event_type="click", item_id=u)
                             for u in users])
        for u in users:
            owner = a if partition_of_user(u, P) in split[0] else b
            owner.wait_item(u, u)
            c.wait_item(u, u)
        # each node of g1 consumed only what it holds
        for s, mine in ((a, split[0]), (b, split[1])):
            for p in s.status()["stream"]["partitions"]:
                if p["partition"] not in mine:
                    assert p["next_offset"] == 0, (p, mine)
        # a restart with the same instance id, within the session timeout: same partitions
        assert a.stop(signal.SIGKILL) == -signal.SIGKILL
        a = seqd_factory(brokers=brokers, args=["--group", "g1", "--instance-id", "a"],
                         data_dir=str(tmp_path / "a"))
        helpers.poll(lambda: held(a) == split[0], "a holds its partitions again")
        for u in users:
            if partition_of_user(u, P) in split[0]:
                assert u in a.get(u).item_ids
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait()


def test_standalone_without_instance_id(seqd_factory):
    broker, brokers = start_broker()
    try:
        s = seqd_factory(brokers=brokers, args=["--group", "g3"])
        assert held(s) == list(range(P))  # at the ready line already: no rebalance wait
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait()


def test_advertise_is_the_address_in_the_map(seqd_factory):
    """--advertise HOST:PORT is what the map (and so every forwarder) uses for the node;
    it also makes the node a group member without --instance-id (dynamic membership)."""
    broker, brokers = start_broker()
    try:
        s = seqd_factory(brokers=brokers, args=["--group", "g5", "--advertise", "127.0.0.1:1"])
        def me():
            m = json.loads(s.http("/cluster")[1])
            return next((n for n in m["nodes"] if n["self"]), None)
        entry = helpers.poll(me, "its own entry")
        assert entry["grpc"] == "127.0.0.1:1" and entry["admin"] == s.admin
        assert entry["id"] == open(os.path.join(s.data_dir, "node-id")).read().strip()
        helpers.poll(lambda: held(s) == list(range(P)), "the group of one holds everything")
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait()
