"""Faults (issue 6, item 4): the Kafka broker goes down and comes back (`seqctl broker`
takes its broker down on SIGUSR1 and up on SIGUSR2). Meanwhile reads go on from storage;
afterwards consumption resumes, and every event produced before and after the outage is
there exactly once. (/readyz turning not-ready during the outage is not done yet.)"""
import signal
import time

from helpers import make_event, now_ms, poll, stubs
from test_crash import start_broker

N = 500


def pb_health():
    return stubs()[2]


def ids(s, user):
    return list(s.get(user).item_ids)


def test_broker_down_and_back(seqd_factory):
    broker, brokers = start_broker()
    try:
        s = seqd_factory(brokers=brokers)
        p = s.producer()
        base = now_ms() - 3600000
        p.events([make_event(1 + i % 5, base + i, "click", i, "f-%d" % i) for i in range(N)])
        poll(lambda: sum(len(ids(s, u)) for u in range(1, 6)) == N, "first half visible")
        poll(lambda: s.http("/readyz")[0] == 200, "ready")

        broker.send_signal(signal.SIGUSR1)
        time.sleep(3)  # an outage librdkafka notices (its reconnect backoff is below 1 s)
        assert sum(len(ids(s, u)) for u in range(1, 6)) == N  # reads go on from storage
        assert s.health().Check(pb_health().HealthCheckRequest(), timeout=30).status == 1

        broker.send_signal(signal.SIGUSR2)
        p.events([make_event(1 + i % 5, base + i, "click", i, "f-%d" % i) for i in range(N, 2 * N)])
        poll(lambda: s.http("/readyz")[0] == 200, "ready again", timeout=60)
        poll(lambda: sum(len(ids(s, u)) for u in range(1, 6)) >= 2 * N, "second half visible",
             timeout=60)
        for u in range(1, 6):
            got = ids(s, u)
            assert sorted(got) == [i for i in range(2 * N) if 1 + i % 5 == u], u
        assert s.stop() == 0
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
