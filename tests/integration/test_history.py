"""History and provenance through a stock gRPC client and seqctl (PRODUCT.md "History,
provenance and the two paths side by side"): request validation of the new fields,
provenance per event, the STREAM_ONLY and BATCH_ONLY views, the completeness gap (field,
refusal, /metrics gauge)."""
import json
import os
import re

import grpc
import pytest

from helpers import DAY, HOUR, batch_root_server, make_event, new_user, now_ms, pb
from test_batch import build, ev, floor_hour, load

RETENTION = 90 * DAY  # engagements in the test definition


@pytest.fixture(scope="module")
def hserver(tmp_path_factory, stubs):
    s = batch_root_server(str(tmp_path_factory.mktemp("history")))
    yield s
    s.kill()


def refused(s, **kw):
    with pytest.raises(grpc.RpcError) as e:
        s.get(kw.pop("user_id", 1), **kw)
    return e.value.code(), e.value.details()


def batch_refused(s, entries):
    req = pb().BatchGetSequencesRequest(requests=[pb().GetSequenceRequest(**e) for e in entries])
    with pytest.raises(grpc.RpcError) as e:
        s.stub().BatchGetSequences(req, timeout=30)
    return e.value.code(), e.value.details()


def test_bad_requests(hserver):
    s = hserver
    assert refused(s, user_id=0) == (grpc.StatusCode.INVALID_ARGUMENT, "user_id: required")
    code, msg = refused(s, view=7)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("view: 7 is not a View")
    code, msg = refused(s, as_of_ms=-1)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("as_of_ms: -1 is negative")
    code, msg = refused(s, as_of_ms=now_ms() + 3600 * 1000)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("as_of_ms: ")
    assert "future" in msg
    ok = {"user_id": 5, "sequence": "engagements"}
    code, msg = batch_refused(s, [ok, ok, dict(ok, user_id=0)])
    assert (code, msg) == (grpc.StatusCode.INVALID_ARGUMENT, "requests[2]: user_id: required")
    code, msg = batch_refused(s, [dict(ok, view=3), ok])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("requests[0]: view: 3")


def test_provenance_views_and_gap(hserver):
    s = hserver
    u = new_user()
    now = now_ms()
    day = floor_hour(now - 10 * DAY)
    start, end = day, floor_hour(now - 2 * HOUR)  # history and part of the recent range
    p = s.producer()
    p.events([make_event(u, t, "click", item, eid) for t, item, eid in [
        (now - HOUR, 1, "s-recent"),            # recent: the stream's
        (now - 3 * HOUR, 2, "dup-recent"),      # recent, also in the batch: stream wins
        (now - 5 * DAY, 3, "s-hidden"),         # covered history: hidden in MERGED
        (now - 20 * DAY, 4, "s-uncovered"),     # uncovered history: the stream's
        (now - 30 * HOUR, 99, "s-hidden2"),     # covered history too
    ]])
    p.flush()
    s.wait_visible(u, 5)
    gen = 5000
    paths = build(s, "prov", "engagements", start, end, gen, [
        ev(u, now - 4 * HOUR, 12, "dup-recent"),
        ev(u, now - 6 * HOUR, 13, "b-recent"),
        ev(u, now - 6 * DAY, 14, "b-hist"),
    ])
    r = load(s, "engagements", start, end, gen, paths)
    assert r.generation == gen

    m = s.get(u, include_provenance=True)
    got = list(zip(m.item_ids, m.sources, m.generations))
    assert got == [(1, 0, 0), (2, 0, 0), (13, 1, gen), (14, 1, gen), (4, 0, 0)], got
    plain = s.get(u)
    assert list(plain.sources) == [] and list(plain.generations) == []
    assert list(plain.item_ids) == list(m.item_ids)
    assert plain.batch_generation == m.batch_generation == gen

    st = s.get(u, view=pb().STREAM_ONLY, include_provenance=True)
    assert list(st.item_ids) == [1, 2, 99, 3, 4] and set(st.sources) == {0}
    bt = s.get(u, view=pb().BATCH_ONLY, include_provenance=True)
    assert list(bt.item_ids) == [12, 13, 14] and list(bt.generations) == [gen] * 3
    # views report the batch state and watermarks as MERGED does, and take every cut
    assert (bt.batch_generation, bt.batch_watermark_ms) == (gen, end)
    assert list(s.get(u, view=pb().BATCH_ONLY, max_events=1).item_ids) == [12]
    assert list(s.get(u, view=pb().STREAM_ONLY, since_ms=now - 6 * DAY,
                      until_ms=now - 4 * HOUR).item_ids) == [99, 3]

    # the gap: [now - retention, C) minus [start, C)
    want_gap = (start - (m.as_of_ms - RETENTION))
    assert m.completeness_gap_ms == want_gap
    assert abs(m.as_of_ms - now_ms()) < 600000
    ok = s.get(u, max_completeness_gap_ms=want_gap + 10 * DAY)
    assert ok.completeness_gap_ms == start - (ok.as_of_ms - RETENTION)
    code, msg = refused(s, user_id=u, max_completeness_gap_ms=DAY)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert re.match(r"completeness gap \d+ ms exceeds max_completeness_gap_ms 86400000; "
                    r"committed batch coverage of 'engagements': \[%d, %d\)$" % (start, end),
                    msg), msg
    code, msg = refused(s, user_id=u, max_completeness_gap_ms=-1)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    gauge = s.metric("seqd_batch_completeness_gap_seconds")
    # the short sequence has no batch and retention 7 days - horizon 1 day
    assert abs(gauge - (want_gap + 6 * DAY) / 1000.0) < 700

    # seqctl: a source column, views, JSON fields
    out = s.seqctl("get", u, "engagements", "--provenance", check=True).stdout
    lines = [ln for ln in out.splitlines() if re.match(r"\d{4}-", ln)]
    assert [ln.split()[-1] for ln in lines] == ["stream", "stream", "g%d" % gen, "g%d" % gen,
                                                 "stream"], out
    assert "batch g%d" % gen in out and "source" in out.splitlines()[1]
    assert re.search(r"^completeness_gap_ms \d+ ", out, re.M), out
    out = s.seqctl("get", u, "engagements", "--view", "batch", "--json", "--provenance",
                   check=True).stdout
    doc = json.loads(out)
    assert [e["item_id"] for e in doc["events"]] == [12, 13, 14]
    assert {(e["source"], e["generation"]) for e in doc["events"]} == {("batch", gen)}
    assert doc["completeness_gap_ms"] > 0 and doc["as_of_ms"] > 0
    out = s.seqctl("get", u, "engagements", "--view", "stream").stdout
    assert "source" not in out and len([ln for ln in out.splitlines() if re.match(r"\d{4}-", ln)]) == 5
    r = s.seqctl("get", u, "engagements", "--view", "both")
    assert r.returncode == 2 and "--view" in r.stderr


def test_seqctl_diff(hserver):
    s = hserver
    u, quiet = new_user(), new_user()
    now = now_ms()
    start, end = floor_hour(now - 20 * DAY), floor_hour(now - 12 * DAY)
    p = s.producer()
    p.events([make_event(u, t, "click", item, eid) for t, item, eid in [
        (start + HOUR, 1, "same"),              # in both, equal
        (start + 2 * HOUR, 2, "moved"),         # in both, the batch fixed its item
        (start + 3 * HOUR, 3, "stream-only"),   # only the stream has it
        (end + HOUR, 4, "outside"),             # outside the coverage: not compared
    ]])
    p.flush()
    s.wait_visible(u, 4, view=pb().STREAM_ONLY)
    paths = build(s, "diff", "engagements", start, end, 7000, [
        ev(u, start + HOUR, 1, "same"), ev(u, start + 2 * HOUR, 22, "moved"),
        ev(u, start + 4 * HOUR, 5, "late"),     # only the batch has it
    ])
    load(s, "engagements", start, end, 7000, paths)
    args = ["diff", "--sequence", "engagements", "--since", start, "--until", now,
            "--users", "%d,%d" % (u, quiet)]
    doc = json.loads(s.seqctl(*args, "--json", check=True).stdout)
    assert {k: doc[k] for k in ("users", "both", "only_batch", "only_stream", "different")} == \
        {"users": 2, "both": 2, "only_batch": 1, "only_stream": 1, "different": 1}, doc
    assert doc["agreement"] == pytest.approx(0.25)
    assert [t["user"] for t in doc["top"]] == [u]
    out = s.seqctl(*args, check=True).stdout
    assert re.search(r"only in batch\s+1\b", out) and re.search(r"agreement\s+0\.2500", out), out
    assert str(u) in out.split("users that differ most:")[1]
    # users from a file, with a range
    f = os.path.join(s.workdir, "users.txt")
    with open(f, "w") as fh:
        fh.write("%d\n%d-%d\n" % (u, quiet, quiet))
    doc2 = json.loads(s.seqctl(*(args[:-1] + ["@" + f, "--json"]), check=True).stdout)
    assert doc2["users"] == 2 and doc2["both"] == 2
    # usage errors: exit 2 with a message
    for bad in (["--users", ""], ["--users", "5-2"], ["--users", "x"]):
        r = s.seqctl(*(args[:-2] + bad))
        assert r.returncode == 2 and "user" in r.stderr, (bad, r.stderr)
    r = s.seqctl("diff", "--sequence", "engagements", "--since", now, "--until", now,
                 "--users", "1")
    assert r.returncode == 2 and "empty" in r.stderr
    r = s.seqctl("diff", "--sequence", "nope", "--since", 1, "--until", 2, "--users", "1")
    assert r.returncode == 1 and "nope" in r.stderr
