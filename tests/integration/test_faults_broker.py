"""Faults (issue 6, item 4): the Kafka broker goes down and comes back (`seqctl broker`
takes its broker down on SIGUSR1 and up on SIGUSR2). Meanwhile /readyz is not ready
(naming the brokers) and reads go on from storage; afterwards /readyz is ready again,
consumption resumes, and every event produced before, during and after the outage is
there exactly once. SIGTERM with the brokers down still stops seqd cleanly (exit 0),
whether it comes after the ready line, during startup, or while partitions are being
assigned (a bug once: the consumer thread hung in rd_kafka_query_watermark_offsets)."""
import signal
import threading
import time

from helpers import make_event, now_ms, poll, stubs
from test_crash import start_broker

N = 500
STOP_BOUND_S = 20  # only catches a hang: a clean stop takes about a second


def pb_health():
    return stubs()[2]


def ids(s, user):
    return list(s.get(user).item_ids)


def batch(lo, hi, base):
    return [make_event(1 + i % 5, base + i, "click", i, "f-%d" % i) for i in range(lo, hi)]


def stop_broker(broker):
    broker.send_signal(signal.SIGTERM)
    broker.wait(timeout=30)


def test_broker_down_and_back(seqd_factory):
    broker, brokers = start_broker()
    try:
        s = seqd_factory(brokers=brokers)
        p = s.producer()
        base = now_ms() - 3600000
        p.events(batch(0, N, base))
        poll(lambda: sum(len(ids(s, u)) for u in range(1, 6)) == N, "first part visible")
        poll(lambda: s.http("/readyz")[0] == 200, "ready")
        assert s.metric("seqd_kafka_brokers_down") == 0

        broker.send_signal(signal.SIGUSR1)
        code, body = poll(lambda: (lambda r: r if r[0] == 503 else None)(s.http("/readyz")),
                          "not ready while the broker is down")
        assert "brokers" in body and brokers in body, body
        assert s.metric("seqd_kafka_brokers_down") == 1
        assert sum(len(ids(s, u)) for u in range(1, 6)) == N  # reads go on from storage
        assert s.health().Check(pb_health().HealthCheckRequest(), timeout=30).status == 1
        # produced during the outage: the producer holds them until the broker is back
        during = threading.Thread(target=p.events, args=(batch(N, 2 * N, base),))
        during.start()
        time.sleep(1)
        assert s.http("/readyz")[0] == 503  # still down: the probe keeps failing

        broker.send_signal(signal.SIGUSR2)
        during.join()
        p.events(batch(2 * N, 3 * N, base))
        poll(lambda: s.http("/readyz")[0] == 200, "ready again")
        assert s.metric("seqd_kafka_brokers_down") == 0
        poll(lambda: sum(len(ids(s, u)) for u in range(1, 6)) >= 3 * N, "every part visible")
        for u in range(1, 6):
            assert sorted(ids(s, u)) == [i for i in range(3 * N) if 1 + i % 5 == u], u
        assert s.counts()["events_applied"] == 3 * N
        assert s.stop() == 0
    finally:
        stop_broker(broker)


def test_sigterm_with_broker_down_after_ready(seqd_factory):
    broker, brokers = start_broker()
    try:
        s = seqd_factory(brokers=brokers)
        s.producer().events(batch(0, 50, now_ms() - 60000))
        poll(lambda: s.http("/readyz")[0] == 200, "ready")
        broker.send_signal(signal.SIGUSR1)
        poll(lambda: s.http("/readyz")[0] == 503, "not ready while the broker is down")
        s.close_channel()
        s.proc.send_signal(signal.SIGTERM)
        assert s.wait_exit(timeout=STOP_BOUND_S) == 0, s.stderr_text()
    finally:
        stop_broker(broker)


def test_sigterm_with_broker_down_from_the_start(seqd_factory):
    broker, brokers = start_broker()
    try:
        broker.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        s = seqd_factory(brokers=brokers, expect_ready=False)
        time.sleep(2)  # inside the startup wait for partitions (up to 10 s)
        s.proc.send_signal(signal.SIGTERM)
        assert s.wait_exit(timeout=STOP_BOUND_S) == 0, s.stderr_text()
        s = seqd_factory(brokers=brokers)  # brokers still down: serves, but not ready
        code, body = s.http("/readyz")
        assert code == 503 and "brokers" in body, body
        assert s.stop() == 0
    finally:
        stop_broker(broker)


def test_sigterm_with_broker_going_down_while_assigning(seqd_factory):
    """The broker goes down moments after seqd starts, at several delays, so that some
    runs catch the consumer assigning partitions."""
    for delay in (0.02, 0.05, 0.1, 0.2):
        broker, brokers = start_broker()
        try:
            s = seqd_factory(brokers=brokers, expect_ready=False)
            time.sleep(delay)
            broker.send_signal(signal.SIGUSR1)
            time.sleep(1)
            s.proc.send_signal(signal.SIGTERM)
            assert s.wait_exit(timeout=STOP_BOUND_S) == 0, (delay, s.stderr_text())
        finally:
            stop_broker(broker)
