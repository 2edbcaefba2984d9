"""Crash safety (PRODUCT.md rule 7): with the log in a separate `seqctl broker` process,
seqd is SIGKILLed at seeded random moments while ~20k events are being produced and
restarted on the same data dir; in the end every event is present exactly once."""
import random
import signal
import subprocess
import threading
import time

from helpers import SEQCTL_BIN, Producer, make_event, now_ms, poll

N_EVENTS = 20000
N_USERS = 200
ROUNDS = 7
SEED = 20240607

DEFINITION = {
    "bucket_ms": 3600000,
    "freshness_horizon_ms": 86400000,
    "sequences": [{"name": "all", "event_types": ["click", "view"], "max_length": 100000,
                   "retention_ms": 7 * 86400000, "columns": ["n"]}],
}


def start_broker():
    p = subprocess.Popen([SEQCTL_BIN, "broker", "--partitions", "4"], stdout=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("brokers="), line
    return p, line.split("=", 1)[1]


def events(base):
    """Event i: user 1 + i % N_USERS, item i, its own id, times spread over ~2 hours."""
    for i in range(N_EVENTS):
        yield make_event(1 + i % N_USERS, base + i * 300, "click" if i % 3 else "view", i,
                         "crash-%d" % i, {"n": float(i)})


def produce_chunk(producer, chunk):
    for ev in chunk:
        producer.raw(str(ev.user_id).encode(), ev.SerializeToString())
    producer.flush()


def read_all(s):
    """{user: item list} over every user."""
    return {u: list(s.get(u, "all").item_ids) for u in range(1, N_USERS + 1)}


def test_sigkill_loses_and_duplicates_nothing(seqd_factory, tmp_path):
    rng = random.Random(SEED)
    broker, brokers = start_broker()
    try:
        data = str(tmp_path / "data")
        all_events = list(events(now_ms() - 2 * 3600000))
        chunk = (N_EVENTS + ROUNDS - 1) // ROUNDS
        producer = Producer(brokers)
        s = seqd_factory(definition=DEFINITION, data_dir=data, brokers=brokers)
        for r in range(ROUNDS):
            part = all_events[r * chunk:(r + 1) * chunk]
            t = threading.Thread(target=produce_chunk, args=(producer, part))
            t.start()
            # a random moment: half the rounds very early (mid-consume), half later
            time.sleep(rng.uniform(0.0, 0.03) if rng.random() < 0.5 else rng.uniform(0.0, 0.3))
            assert s.stop(signal.SIGKILL) == -signal.SIGKILL
            t.join()
            s = seqd_factory(definition=DEFINITION, data_dir=data, brokers=brokers)
        # catch up, then every event exactly once
        total = poll(lambda: (lambda m: m if sum(map(len, m.values())) >= N_EVENTS else None)(
            read_all(s)), "all %d events to be visible" % N_EVENTS, timeout=180, interval=0.5)
        expected = {u: [] for u in range(1, N_USERS + 1)}
        for ev in sorted(all_events, key=lambda e: (-e.event_time_ms, e.event_id)):
            expected[ev.user_id].append(ev.item_id)
        for u in expected:
            assert total[u] == expected[u], "user %d: %d events, want %d" % (
                u, len(total[u]), len(expected[u]))
        r = s.get(1, "all")
        assert list(r.columns[0].values) == [float(i) for i in r.item_ids]
        assert s.stop() == 0
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
