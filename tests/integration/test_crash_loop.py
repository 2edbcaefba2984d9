"""Crash safety under a longer SIGKILL loop (issue 6, item 4; PRODUCT.md rule 7): seqd
consumes from a `seqctl broker` (the log survives seqd) while 50k events are produced in
KILLS chunks; each chunk's seqd is SIGKILLed at a seeded random moment (before, during or
after it consumes the chunk, sometimes right after it starts), then restarted on the same
data dir. Some messages are corrections (an earlier event id again, two hours earlier, so
in another bucket, with another item and value) and some are verbatim duplicates of an
earlier message: with blind writes (issue 10) the copies meet only in the merge operator
and through the id index, across crashes. At the end every event id is present exactly
once, as its last copy, with its own column value.
Seeded: SEQD_CRASH_SEED overrides the seed to explore other moments by hand."""
import os
import random
import signal
import threading
import time

from helpers import Producer, make_event, now_ms
from test_crash import DEFINITION, produce_chunk, start_broker

N_EVENTS = 50000
N_USERS = 100
KILLS = 50
SEED = int(os.environ.get("SEQD_CRASH_SEED", "20261125"))


def all_events(base):
    """Message i is event loop-i, except: i % 10 == 9 corrects event i - N_USERS (same user,
    so same partition and order), moved 2 h (+100 ms, no time collision) earlier; i % 13 == 0
    re-sends message i - N_USERS verbatim."""
    evs = []
    for i in range(N_EVENTS):
        user = 1 + i % N_USERS
        if i >= N_USERS and i % 10 == 9:
            evs.append(make_event(user, base + i * 200 - 7200100, "click", i,
                                  "loop-%d" % (i - N_USERS), {"n": float(i)}))
        elif i >= N_USERS and i % 13 == 0:
            evs.append(evs[i - N_USERS])
        else:
            evs.append(make_event(user, base + i * 200, "view" if i % 4 == 0 else "click", i,
                                  "loop-%d" % i, {"n": float(i)}))
    return evs


def kill_moment(rng):
    """Seconds to wait before the kill: right after start, mid-consume, or later."""
    kind = rng.random()
    if kind < 0.3:
        return rng.uniform(0.0, 0.01)
    if kind < 0.7:
        return rng.uniform(0.0, 0.1)
    return rng.uniform(0.1, 0.6)


def test_sigkill_loop_exactly_once(seqd_factory, tmp_path):
    rng = random.Random(SEED)
    broker, brokers = start_broker()
    try:
        data = str(tmp_path / "data")
        evs = all_events(now_ms() - 3 * 3600000)
        chunk = (N_EVENTS + KILLS - 1) // KILLS
        producer = Producer(brokers)
        s = seqd_factory(definition=DEFINITION, data_dir=data, brokers=brokers)
        for r in range(KILLS):
            t = threading.Thread(target=produce_chunk,
                                 args=(producer, evs[r * chunk:(r + 1) * chunk]))
            t.start()
            time.sleep(kill_moment(rng))
            assert s.stop(signal.SIGKILL) == -signal.SIGKILL
            t.join()
            s = seqd_factory(definition=DEFINITION, data_dir=data, brokers=brokers)
        last = {}
        for ev in evs:  # the copy applied last wins
            last[ev.event_id] = ev
        want = {u: [] for u in range(1, N_USERS + 1)}
        for ev in sorted(last.values(), key=lambda e: (-e.event_time_ms, e.event_id)):
            want[ev.user_id].append(ev.item_id)

        def read_all():
            return {u: list(s.get(u, "all").item_ids) for u in range(1, N_USERS + 1)}
        deadline = time.monotonic() + 180
        while True:  # until the last copies are applied; then the answer must be exact
            got = read_all()
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for u in want:
            assert got[u] == want[u], "seed %d user %d: %d events, want %d" % (
                SEED, u, len(got[u]), len(want[u]))
        for u in (1, N_USERS // 2, N_USERS):
            r = s.get(u, "all")
            assert list(r.columns[0].values) == [float(i) for i in r.item_ids]
        assert s.stop() == 0
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
