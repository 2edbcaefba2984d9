"""Memory under load (issue 6, item 6; plain build only: scripts/test.sh excludes it under
the sanitizers): many connections and streams plus ingest for a bounded time, and the RSS
stays under a bound set by the configured caches (--cache-mb 64) plus fixed overhead."""
import threading
import time

from helpers import make_event, now_ms, pb
from test_hostile_h2 import rss

CONNS = 24
SECONDS = 12
BOUND = 600 << 20  # 64 MiB cache + transport buffers + librdkafka's mock cluster


def test_rss_bounded_under_load(seqd_factory):
    import grpc
    s = seqd_factory(args=["--cache-mb", "64"])
    stop, errors, calls = threading.Event(), [], [0]
    req = pb().BatchGetSequencesRequest(requests=[
        pb().GetSequenceRequest(user_id=u, sequence="engagements") for u in range(1, 51)])

    def reader():
        ch = grpc.insecure_channel(s.grpc)
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
        ch.close()

    def writer():
        p = s.producer()
        i, base = 0, now_ms() - 3600000
        while not stop.is_set():
            p.events([make_event(1 + (i + k) % 500, base + i + k, "click", i + k, "m-%d" % (i + k))
                      for k in range(2000)])
            i += 2000

    threads = [threading.Thread(target=reader) for _ in range(CONNS)] + [threading.Thread(target=writer)]
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
    assert not errors, errors[:3]
    assert calls[0] > 0 and s.counts()
    assert peak < BOUND, "RSS peaked at %d MiB" % (peak >> 20)
    assert s.stop() == 0
