"""Leak check over a whole start-serve-stop cycle (issue 6, item 6): in the ASan build
(scripts/test.sh --sanitize, ASAN_OPTIONS=detect_leaks=1:abort_on_error=1), LeakSanitizer
runs at seqd's exit: a leak turns the clean exit into an abort and prints its report.
Elsewhere it is skipped: LSan needs the instrumented binary."""
import pytest

from helpers import asan_build, make_event, now_ms, pb


@pytest.mark.skipif(not asan_build(), reason="needs the ASan build (scripts/test.sh --sanitize)")
def test_start_serve_stop_leaks_nothing(seqd_factory):
    s = seqd_factory()
    base = now_ms() - 60000
    s.producer().events([make_event(3, base + i, "click", i, "l-%d" % i) for i in range(200)])
    s.wait_visible(3, 200)
    req = pb().BatchGetSequencesRequest(requests=[
        pb().GetSequenceRequest(user_id=u, sequence="engagements") for u in range(1, 20)])
    for _ in range(20):
        s.stub().BatchGetSequences(req, timeout=30)
    s.http("/metrics")
    s.http("/status")
    assert s.stop() == 0, s.stderr_text()
    assert "LeakSanitizer" not in s.stderr_text()
