"""Dry-run loads and honest no-ops (PRODUCT.md "Dry-run loads"): a dry run verifies
everything and changes nothing, and counts what the load would change in the MERGED view
over [start, min(end, C)): users emptied and stream events hidden; a real load reports
the same counts; the committed generation again still checks its paths and says nothing
changed; a missing directory inside the batch root is NOT_FOUND."""
import os

import grpc
import pytest

from helpers import DAY, HOUR, batch_root_server, make_event, new_user, now_ms, pb
from test_batch import build, ev, floor_hour


@pytest.fixture(scope="module")
def dserver(tmp_path_factory, stubs):
    s = batch_root_server(str(tmp_path_factory.mktemp("dryrun")))
    yield s
    s.kill()


def load(s, seq, start, end, gen, paths, dry_run=False):
    req = pb().LoadBatchRequest(sequence=seq, start_ms=start, end_ms=end, generation=gen,
                                sst_paths=paths, dry_run=dry_run)
    return s.stub().LoadBatch(req, timeout=120)


def code_of(fn, *a, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*a, **kw)
    return e.value.code(), e.value.details()


def test_counts_dry_run_and_real_load(dserver):
    s = dserver
    now = now_ms()
    start, end = floor_hour(now - 10 * DAY), floor_hour(now - 2 * HOUR)  # reaches past C
    u1, u2, u3, u4 = (new_user() for _ in range(4))
    p = s.producer()
    p.events([make_event(u, t, "click", item, eid) for u, t, item, eid in [
        (u1, now - 5 * DAY, 1, "a1"), (u1, now - 4 * DAY, 2, "a2"),  # window: emptied
        (u2, now - 5 * DAY, 3, "b1"),                                  # window: hidden
        (u3, now - 5 * HOUR, 4, "c1"),       # recent (>= C): not in the window
        (u4, now - 9 * DAY, 5, "d1"),        # in G1's coverage below: not shown now
    ]])
    p.flush()
    for u, n in ((u1, 2), (u2, 1), (u3, 1), (u4, 1)):
        s.wait_visible(u, n)
    g1 = build(s, "d-g1", "engagements", start, floor_hour(now - 6 * DAY), 100,
               [ev(u4, now - 8 * DAY, 50, "g1-d")])
    r = load(s, "engagements", start, floor_hour(now - 6 * DAY), 100, g1)
    assert (r.users_emptied, r.stream_events_hidden) == (0, 1)  # u4's d1 is hidden by G1
    assert list(s.get(u4).item_ids) == [50]

    g2 = build(s, "d-g2", "engagements", start, end, 200, [ev(u2, now - 7 * DAY, 60, "g2-b")])
    before = {u: list(s.get(u).item_ids) for u in (u1, u2, u3, u4)}
    d = load(s, "engagements", start, end, 200, g2, dry_run=True)
    assert (d.generation, d.files, d.users, d.events) == (200, 1, 1, 1)
    # u1 (stream only) and u4 (G1 only) emptied; u1's two and u2's one stream events hidden
    assert (d.users_emptied, d.stream_events_hidden) == (2, 3)
    assert {u: list(s.get(u).item_ids) for u in (u1, u2, u3, u4)} == before  # nothing changed
    assert s.get(u1).batch_generation == 100
    # seqctl load --dry-run prints the same
    out = s.seqctl("load", "--sequence", "engagements", "--start-ms", start, "--end-ms", end,
                   "--generation", 200, "--dry-run", *g2, check=True).stdout
    assert "dry run: generation 200 would load 1 files, 1 users, 1 events" in out, out
    assert "empty 2 users and hide 3 stream events; nothing changed" in out, out
    # the real load reports the same counts
    r = load(s, "engagements", start, end, 200, g2)
    assert (r.users_emptied, r.stream_events_hidden) == (2, 3)
    assert s.get(u1).item_ids == [] and list(s.get(u2).item_ids) == [60]
    assert list(s.get(u3).item_ids) == [4]
    # again: a no-op with the original counts and 0/0, and seqctl says nothing changed
    r = load(s, "engagements", start, end, 200, g2)
    assert (r.generation, r.users, r.events, r.users_emptied, r.stream_events_hidden) == \
        (200, 1, 1, 0, 0)
    out = s.seqctl("load", "--sequence", "engagements", "--start-ms", start, "--end-ms", end,
                   "--generation", 200, *g2, check=True).stdout
    assert "already committed with this range: nothing changed" in out, out
    # ... which still checks its paths
    code, msg = code_of(load, s, "engagements", start, end, 200, ["/etc/passwd"])
    assert code == grpc.StatusCode.PERMISSION_DENIED, msg
    code, msg = code_of(load, s, "engagements", start, end, 200,
                        [os.path.join(s.root, "d-g2", "gone.sst")])
    assert code == grpc.StatusCode.NOT_FOUND, msg
    # a dry run of a stale generation is refused like the load
    code, _ = code_of(load, s, "engagements", start, end, 150, g2, dry_run=True)
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def test_missing_directory_inside_the_root_is_not_found(dserver):
    s = dserver
    now = now_ms()
    start = floor_hour(now - 30 * DAY)
    for path in [os.path.join(s.root, "no-such-dir", "part-00000.sst"),
                 os.path.join(s.root, "a", "b", "c.sst"), "no-such-dir/x.sst"]:
        code, msg = code_of(load, s, "engagements", start, start + HOUR, 10**15, [path])
        assert code == grpc.StatusCode.NOT_FOUND, (path, msg)
        assert "no such file" in msg
    for path in [os.path.join(s.root, "no-such-dir", "..", "..", "etc", "passwd"),
                 "/no-such-dir/x.sst", "../outside/x.sst"]:
        code, msg = code_of(load, s, "engagements", start, start + HOUR, 10**15, [path])
        assert code == grpc.StatusCode.PERMISSION_DENIED, (path, msg)
