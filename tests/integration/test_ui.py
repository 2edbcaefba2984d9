"""The web console (issue 12, items 1 and 2) in a real browser: seqd runs with stream data
(`seqctl produce --sample`) and a loaded batch (`seqctl build` + `seqctl load`); Debian's
headless Chromium loads each page (--dump-dom) and the rendered DOM must show values only
the live data gives (a partition's offsets and lag, the user's event count, the loaded
generation), with no script error, rejected promise or console.error/warn (the page's
collector, errors.js, and Chromium's own console log). Then each page is screenshotted
(SEQD_UI_SCREENSHOTS=DIR keeps them; docs/ui-*.png are made that way). The JSON
endpoints' bad input: 400 with a message; paths outside the assets: 404."""
import json
import os
import re
import shutil
import subprocess
import urllib.request

import pytest

from helpers import DAY, HOUR, batch_root_server, now_ms, poll

CHROMIUM = shutil.which("chromium")
USERS = 4
SAMPLE = 200
GEN = 7


def build_and_load(s, gen, start, end, first_item):
    """seqctl build + seqctl load of 30 click events of user 1 (items first_item..+29)."""
    src = os.path.join(s.workdir, "batch-%d.jsonl" % gen)
    with open(src, "w") as f:
        for i in range(30):
            f.write(json.dumps({"user_id": 1, "event_time_ms": start + i * HOUR // 2,
                                "event_type": "click", "item_id": first_item + i,
                                "event_id": "b-%d" % i, "attributes": {"dwell_ms": 600}}) + "\n")
    out = os.path.join(s.root, "b%d" % gen)
    s.seqctl("build", "--definition", s.definition_path, "--sequence", "engagements",
             "--start-ms", start, "--end-ms", end, "--generation", gen, "--out", out, src,
             check=True)
    ssts = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".sst"))
    s.seqctl("load", "--sequence", "engagements", "--start-ms", start, "--end-ms", end,
             "--generation", gen, *ssts, check=True)


@pytest.fixture(scope="module")
def ui(tmp_path_factory, stubs):
    s = batch_root_server(str(tmp_path_factory.mktemp("ui")))
    try:
        s.seqctl("produce", "--sample", SAMPLE, "--users", USERS, check=True)
        poll(lambda: sum(p["next_offset"] for p in s.status()["stream"]["partitions"]) == SAMPLE
             and s.http("/readyz")[0] == 200, "the sample events consumed")
        s.consumed_ms = now_ms()
        # a batch of engagements for [3 days ago, 2 days ago): history, owned by the batch
        start = (now_ms() - 3 * DAY) // HOUR * HOUR
        end = start + DAY
        build_and_load(s, GEN, start, end, 900000)
        s.batch_range = (start, end)
        yield s
    finally:
        s.kill()


def browse(s, tmp_path, page, screenshot=None):
    """(DOM text, Chromium's console lines) of http://admin/page in headless Chromium."""
    if not CHROMIUM:
        pytest.skip("chromium not installed (scripts/install-deps.sh installs it)")
    profile = tmp_path / ("profile-%d" % os.getpid())
    args = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
            "--user-data-dir=%s" % profile, "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=8000", "--window-size=1400,1100", "--hide-scrollbars"]
    url = "http://%s%s" % (s.admin, page)
    if screenshot:
        r = subprocess.run(args + ["--screenshot=%s" % screenshot, url], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0 and os.path.getsize(screenshot) > 10000, r.stderr[-2000:]
        return None, None
    r = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [l for l in r.stderr.splitlines() if "CONSOLE" in l]
    return r.stdout, console


def rendered(s, tmp_path, page):
    """The DOM once the page rendered live data, checked free of errors."""
    dom, console = browse(s, tmp_path, page)
    assert 'data-ready="1"' in dom, dom[:3000]
    assert 'data-errors="0"' in dom, re.search(r'<pre id="errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert not console, console
    return dom


def text_of(dom, elem_id):
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % re.escape(elem_id), dom)
    assert m, "no #%s in the page" % elem_id
    return m.group(1)


def test_overview_shows_live_partitions(ui, tmp_path):
    st = ui.status()
    dom = rendered(ui, tmp_path, "/ui")
    assert "Ready:" in dom
    assert text_of(dom, "c-applied") == str(ui.status()["counts"]["events_applied"])
    # each partition's row: offsets and lag as /status has them (nothing else can know)
    busy = [p for p in st["stream"]["partitions"] if p["next_offset"] > 0]
    assert busy
    for p in busy:
        row = re.search(r'<tr data-partition="%d">(.*?)</tr>' % p["partition"], dom).group(1)
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
        assert cells[0] == str(p["partition"])
        assert cells[1] == str(p["high_offset"] - p["next_offset"])  # lag
        assert cells[4] == str(p["next_offset"]) and cells[5] == str(p["high_offset"])
    for chart in ("ch-age", "ch-lag", "ch-ingest", "ch-reads", "ch-lat"):
        assert re.search(r'<canvas id="%s" width="\d+"' % chart, dom), chart  # Chart.js drew


def test_batches_show_the_loaded_generation(ui, tmp_path):
    dom = rendered(ui, tmp_path, "/ui/batches")
    eng = re.search(r'<section data-sequence="engagements">(.*?)</section>', dom, re.S).group(1)
    assert re.search(r'<td class="gen">%d</td>' % GEN, eng)
    assert re.search(r'<div class="bar[^"]*" data-generation="%d"[^>]*><span>gen %d</span>'
                     % (GEN, GEN), eng)  # the bar
    assert '<div class="line horizon"' in eng and '<div class="line now"' in eng
    # load history: this load, OK, with its counts
    row = re.search(r'<table id="load-history">.*?<tr data-generation="%d">(.*?)</tr>' % GEN,
                    dom, re.S).group(1)
    assert ">OK<" in row and ">engagements<" in row and ">30<" in row
    short = re.search(r'<section data-sequence="short">(.*?)</section>', dom, re.S).group(1)
    assert "No batch committed" in short


def test_inspector_deep_link_shows_the_users_events(ui, tmp_path):
    resp = ui.get(1, "engagements")
    assert len(resp.timestamps_ms) > 30  # stream events and the batch's
    dom = rendered(ui, tmp_path, "/ui/inspect?user=1&sequence=engagements")
    assert text_of(dom, "event-count") == str(len(resp.timestamps_ms))
    assert text_of(dom, "batch-generation") == str(GEN)
    items = re.findall(r'<td class="num item">(\d+)</td>', dom)
    assert [int(i) for i in items] == list(resp.item_ids)
    assert "900000" in items  # a batch event, history owned by the batch
    # provenance: the source column says which path each event came from
    sources = re.findall(r'<td class="source">(\w+)</td>', dom)
    assert sources == ["batch" if 900000 <= i < 900030 else "stream" for i in resp.item_ids]
    assert text_of(dom, "view") == "merged"


def test_inspector_view_switch(ui, tmp_path):
    dom = rendered(ui, tmp_path, "/ui/inspect?user=1&sequence=engagements&view=batch_only")
    items = [int(i) for i in re.findall(r'<td class="num item">(\d+)</td>', dom)]
    assert sorted(items) == list(range(900000, 900030))  # the batch's events only
    assert text_of(dom, "view") == "batch only"


def test_inspector_bad_value_says_why(ui, tmp_path):
    dom, console = browse(ui, tmp_path, "/ui/inspect?user=abc&sequence=engagements")
    assert "user: &#39;abc&#39; is not a decimal number" in dom or \
        "user: 'abc' is not a decimal number" in dom, dom[-3000:]


def test_cluster_page_says_single_node(ui, tmp_path):
    dom = rendered(ui, tmp_path, "/ui/cluster")
    assert 'id="single-node"' in dom
    n = len(ui.status()["stream"]["partitions"])
    assert len(re.findall(r'<div class="cell (?:caught|held)"', dom)) == n


def test_screenshots(ui, tmp_path):
    keep = os.environ.get("SEQD_UI_SCREENSHOTS")
    for name, page in [("overview", "/ui"), ("batches", "/ui/batches"),
                       ("inspector", "/ui/inspect?user=1&sequence=engagements"),
                       ("cluster", "/ui/cluster")]:
        path = os.path.join(keep or str(tmp_path), "ui-%s.png" % name)
        browse(ui, tmp_path, page, screenshot=path)


# ---- the JSON endpoints and the routes, over plain HTTP ----

def get(s, path):
    try:
        with urllib.request.urlopen("http://%s%s" % (s.admin, path), timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


@pytest.mark.parametrize("query,message", [
    ("user=abc&sequence=engagements", "user: 'abc' is not a decimal number"),
    ("user=-1&sequence=engagements", "user: '-1'"),
    ("user=18446744073709551616&sequence=engagements", "is not a decimal number in range"),
    ("sequence=engagements", "user: missing"),
    ("user=1", "sequence: missing"),
    ("user=1&user=2&sequence=engagements", "user: given twice"),
    ("user=1&sequence=nope", "'nope' is not a sequence of the definition"),
    ("user=1&sequence=eng%ZZ", "sequence: bad %-escape"),
    ("user=1&sequence=a%00b", "sequence: bad %-escape"),
    ("user=1&sequence=engagements&view=sideways", "view: 'sideways'"),
    ("user=1&sequence=engagements&limit=0", "limit: '0'"),
    ("user=0&sequence=engagements", "user_id"),  # the read's own validation
    ("user=1&sequence=engagements&as_of=99999999999999", "in the future"),
    ("user=1&sequence=" + "x" * 300, "longer than"),
])
def test_sequence_api_bad_values_400(ui, query, message):
    code, ctype, body = get(ui, "/ui/api/sequence?" + query)
    assert code == 400 and ctype == "application/json", (code, body)
    assert message in json.loads(body)["error"], body


def test_sequence_api_answers_like_get_sequence(ui):
    code, _, body = get(ui, "/ui/api/sequence?user=1&sequence=engagements&limit=5&utm=x")
    assert code == 200
    r = json.loads(body)
    resp = ui.get(1, "engagements", max_events=5)
    assert [e["item"] for e in r["events"]] == list(resp.item_ids)
    assert [e["time_ms"] for e in r["events"]] == list(resp.timestamps_ms)
    assert r["batch_generation"] == GEN == resp.batch_generation
    assert r["columns"] == ["dwell_ms", "position"]


@pytest.mark.parametrize("path", ["/ui/nope", "/ui/assets/nope.js", "/ui/assets/../index.html",
                                  "/ui/api/nope", "/ui/assets/", "/uix", "/ui/index.html"])
def test_outside_the_assets_404(ui, path):
    assert get(ui, path)[0] == 404


@pytest.mark.parametrize("path,ctype", [("/ui", "text/html"), ("/ui/batches", "text/html"),
                                        ("/ui/assets/app.js", "text/javascript"),
                                        ("/ui/assets/vendor/chart.min.js", "text/javascript"),
                                        ("/ui/assets/app.css", "text/css")])
def test_assets_served_from_the_binary(ui, path, ctype):
    code, got, body = get(ui, path)
    assert code == 200 and got.startswith(ctype)
    rel = {"/ui": "index.html", "/ui/batches": "index.html"}.get(path, path[4:])
    from helpers import SOURCE
    with open(os.path.join(SOURCE, "server", "ui", rel), "rb") as f:
        assert body == f.read()


def overview(s):
    code, _, body = get(s, "/ui/api/overview")
    assert code == 200
    return json.loads(body)


def test_overview_api_counts_and_series(ui):
    o = overview(ui)
    assert o["ready"] is True and o["not_ready"] == ""
    assert o["counts"]["applied"] == ui.status()["counts"]["events_applied"]
    assert o["counts"]["damaged"] == ui.metric("seqd_storage_corrupt_total")
    # the ring: one point per sample for every series, times increasing
    o = poll(lambda: (lambda o: o if len(o["series"]["t_ms"]) >= 2 else None)(overview(ui)),
             "a second sample")
    t = o["series"]["t_ms"]
    assert t == sorted(t) and len(set(t)) == len(t)
    assert set(o["series"]["lag"]) == {str(p["partition"]) for p in o["partitions"]}
    for name in ("ingest_per_s", "reads_per_s", "errors_per_s", "p50_ms", "p99_ms"):
        assert len(o["series"][name]) == len(t), name
    for p in o["series"]["lag"]:
        assert len(o["series"]["lag"][p]) == len(t) and len(o["series"]["age_s"][p]) == len(t), p


def test_overview_ingest_series_accounts_for_every_message(ui):
    """The rates times their intervals add up to the messages consumed: the first sample
    was taken at start, before any was produced, and one after the last was consumed."""
    o = poll(lambda: (lambda o: o if o["series"]["t_ms"][-1] > ui.consumed_ms else None)(
        overview(ui)), "a sample after the last message was consumed")
    t, rate = o["series"]["t_ms"], o["series"]["ingest_per_s"]
    total = sum(rate[i] * (t[i] - t[i - 1]) / 1000.0 for i in range(1, len(t)))
    assert abs(total - SAMPLE) < 1, (total, t, rate)


def test_console_is_read_only(ui):
    req = urllib.request.Request("http://%s/ui/api/overview" % ui.admin, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 405


def test_batches_show_the_persisted_history_with_a_rollback(tmp_path, stubs):
    """Loads 7 then 8 over one range, rolls back to 7: the Batches page shows, from the
    persisted load history (not this process's call list), 8 undone and 7 in effect, and
    the bar is generation 7 again; after a restart the same history is shown."""
    s = batch_root_server(str(tmp_path / "srv"))
    try:
        start = (now_ms() - 3 * DAY) // HOUR * HOUR
        build_and_load(s, 7, start, start + DAY, 900000)
        build_and_load(s, 8, start, start + DAY, 910000)
        s.seqctl("rollback", "--sequence", "engagements", "--to", 7, check=True)

        def states(dom):
            eng = re.search(r'<section data-sequence="engagements">(.*?)</section>', dom, re.S).group(1)
            kept = re.search(r'<table class="loads-kept">(.*?)</table>', eng, re.S).group(1)
            return (dict(re.findall(r'<tr data-generation="(\d+)" data-state="([^"]+)">', kept)),
                    re.findall(r'<div class="bar[^"]*" data-generation="(\d+)"', eng))

        rows, bars = states(rendered(s, tmp_path, "/ui/batches"))
        assert rows == {"7": "in effect", "8": "undone"}, rows
        assert bars == ["7"], bars
        assert s.stop() == 0
        s.start()
        rows, bars = states(rendered(s, tmp_path, "/ui/batches"))
        assert rows == {"7": "in effect", "8": "undone"}, rows
        assert bars == ["7"], bars
    finally:
        s.kill()
