"""Memory under load (issue 6, item 6; plain build only: scripts/test.sh excludes it under
the sanitizers): many connections and streams plus ingest for a bounded time, and the RSS
stays under a bound set by the configured caches (--cache-mb 64) plus fixed overhead.
The log lives in a `seqctl broker` process, so the RSS measured is seqd's own and not
the mock cluster's, which keeps every produced message."""
import signal
import threading
import time

from helpers import Producer, make_event, now_ms, pb
from test_crash import start_broker
from test_hostile_h2 import rss

CONNS = 24
SECONDS = 12
# 64 MiB of cache and memtables + librdkafka's prefetch queue (16 MiB of payload) + the
# responses in flight (24 x 16 x ~150 KB) + allocator slack under contention.
BOUND = 400 << 20


def test_rss_bounded_under_load(seqd_factory):
    broker, brokers = start_broker()
    try:
        peak, calls = load(seqd_factory(args=["--cache-mb", "64"], brokers=brokers), brokers)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
    print("peak RSS %d MiB, %d calls" % (peak >> 20, calls))
    assert calls > 0
    assert peak < BOUND, "RSS peaked at %d MiB" % (peak >> 20)


def load(s, brokers):
    """Drives CONNS connections of 16 streams each plus ingest for SECONDS; returns the
    peak RSS and the number of calls answered."""
    import grpc
    stop, errors, calls = threading.Event(), [], [0]
    req = pb().BatchGetSequencesRequest(requests=[
        pb().GetSequenceRequest(user_id=u, sequence="engagements", max_events=100)
        for u in range(1, 51)])

    # One connection per channel: grpc shares a subchannel between channels by default.
    channels = [grpc.insecure_channel(s.grpc, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(CONNS)]

    def reader(ch):
        f = ch.unary_unary("/seqd.v1.SequenceService/BatchGetSequences",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=pb().BatchGetSequencesResponse.FromString)
        futures = []
        while not stop.is_set():
            futures.append(f.future(req, timeout=30))  # several streams in flight
            if len(futures) >= 16:
                for x in futures:
                    try:
                        x.result()
                        calls[0] += 1
                    except grpc.RpcError as e:
                        errors.append(e)
                futures = []

    def writer():
        p = Producer(brokers)
        i, base = 0, now_ms() - 3600000
        while not stop.is_set():
            p.events([make_event(1 + (i + k) % 500, base + i + k, "click", i + k, "m-%d" % (i + k))
                      for k in range(2000)])
            i += 2000

    threads = [threading.Thread(target=reader, args=(ch,)) for ch in channels]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    peak = 0
    try:
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            peak = max(peak, rss(s.proc.pid))
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for ch in channels:
            ch.close()
    assert not errors, errors[:3]
    assert s.counts()
    assert s.stop() == 0
    return peak, calls[0]
