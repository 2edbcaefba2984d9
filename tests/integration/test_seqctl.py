"""seqctl against a real seqd: get (table, --json, errors), status, produce (JSON Lines
file, stdin, --sample), usage errors."""
import json

import helpers
from helpers import SEQCTL_BIN, new_user, now_ms, poll


def _iso(ms):
    import datetime
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def seed(server):
    u, t = new_user(), now_ms() - 60000
    server.producer().events([
        dict(user_id=u, time_ms=t, event_type="click", item_id=77, event_id="s1",
             attributes={"dwell_ms": 1200, "position": 3}),
        dict(user_id=u, time_ms=t - 5000, event_type="save", item_id=88, event_id="s2"),
    ])
    server.wait_visible(u, 2)
    return u, t


def test_get_table(server):
    u, t = seed(server)
    r = server.seqctl("get", u, "engagements", check=True)
    lines = r.stdout.splitlines()
    assert "dwell_ms" in lines[1] and "position" in lines[1] and "item_id" in lines[1]
    first, second = lines[2].split(), lines[3].split()
    assert first == [_iso(t), "click", "77", "1200", "3"]
    assert second[:3] == [_iso(t - 5000), "save", "88"]
    assert second[3].lower() == "nan" and second[4] == "-1"
    assert "stream_watermark_ms" in r.stdout and "batch_generation 0" in r.stdout
    # the last line names the node that read storage: the seqd-served-by trailer
    _, call = server.stub().GetSequence.with_call(
        helpers.pb().GetSequenceRequest(user_id=u, sequence="engagements"), timeout=30)
    node = dict(call.trailing_metadata())["seqd-served-by"]
    assert node and lines[-1] == "served_by " + node, (lines[-1], node)
    assert json.loads(server.seqctl("get", u, "engagements", "--json", check=True).stdout)["served_by"] == node


def test_get_json(server):
    u, t = seed(server)
    r = server.seqctl("get", u, "engagements", "--json", check=True)
    doc = json.loads(r.stdout)
    assert doc["user_id"] == u and doc["sequence"] == "engagements"
    ev = doc["events"]
    assert [(e["time_ms"], e["type"], e["item_id"]) for e in ev] == \
        [(t, "click", 77), (t - 5000, "save", 88)]
    assert ev[0]["time"] == _iso(t)
    assert [e["event_id"] for e in ev] == ["s1", "s2"]
    assert list(ev[0]) == ["time_ms", "time", "type", "type_index", "item_id", "event_id",
                           "columns"]
    assert ev[0]["columns"] == {"dwell_ms": 1200, "position": 3}
    assert ev[1]["columns"] == {"dwell_ms": None, "position": -1}
    assert doc["batch_generation"] == 0 and doc["stream_watermark_ms"] >= t


def test_get_filters_pass_through(server):
    u, t = seed(server)
    r = server.seqctl("get", u, "engagements", "--types", "save", "--json", check=True)
    assert [e["item_id"] for e in json.loads(r.stdout)["events"]] == [88]
    r = server.seqctl("get", u, "engagements", "--since", t, "--until", t + 1, "--json",
                      check=True)
    assert [e["item_id"] for e in json.loads(r.stdout)["events"]] == [77]
    r = server.seqctl("get", u, "engagements", "--max=1", "--json", check=True)
    assert [e["item_id"] for e in json.loads(r.stdout)["events"]] == [77]


def test_get_errors(server):
    r = server.seqctl("get", 1, "no-such-sequence")
    assert r.returncode == 1
    assert r.stderr.startswith("error: NOT_FOUND: "), r.stderr
    r = server.seqctl("get", 1, "engagements", "--since", 5, "--until", 1)
    assert r.returncode == 1 and r.stderr.startswith("error: INVALID_ARGUMENT: ")


def test_usage_errors_exit_2(server):
    for args in (["get"], ["get", "x", "engagements"], ["get", "1", "engagements", "--max"],
                 ["frobnicate"], ["produce"], ["status", "extra"], ["get", "1", "e", "--bogus"]):
        r = server.seqctl(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr


def test_unreachable_server_fails(tmp_path):
    import subprocess
    r = subprocess.run([SEQCTL_BIN, "--server", "127.0.0.1:1", "--admin", "127.0.0.1:1", "get",
                        "1", "engagements"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("error: UNAVAILABLE")


def test_status(server):
    seed(server)
    r = server.seqctl("status", check=True)
    assert server.grpc in r.stdout and server.brokers in r.stdout
    assert "engagements" in r.stdout and "short" in r.stdout
    assert "malformed" in r.stdout and "events_applied" in r.stdout
    raw = json.loads(server.seqctl("status", "--json", check=True).stdout)
    assert raw["grpc"] == server.grpc and "stream" in raw and "counts" in raw


def test_produce_jsonl_file(server, tmp_path):
    u, t = new_user(), now_ms() - 30000
    lines = [
        {"user_id": u, "event_time_ms": t, "event_type": "click", "item_id": 1,
         "event_id": "f1", "attributes": {"dwell_ms": 10}},
        {"user_id": str(u), "event_time_ms": t - 1, "event_type": "view",
         "item_id": "18446744073709551615", "attributes": {"dwell_ms": 900}},
        {"user_id": u, "event_time_ms": t - 2, "event_type": "save", "item_id": 3},
    ]
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    r = server.seqctl("produce", str(f), check=True)
    assert "delivered 3 events" in r.stdout
    resp = server.wait_visible(u, 3)
    assert list(resp.item_ids) == [1, 18446744073709551615, 3]
    assert list(resp.event_types) == [0, 2, 1]


def test_produce_stdin_with_a_bad_line(server):
    u, t = new_user(), now_ms() - 30000
    text = (json.dumps({"user_id": u, "event_time_ms": t, "event_type": "click", "item_id": 4})
            + "\nthis is not json\n"
            + json.dumps({"user_id": "minus one", "event_time_ms": t, "event_type": "click"})
            + "\n" + json.dumps({"user_id": u, "event_time_ms": t - 1, "event_type": "click",
                                 "item_id": 5}) + "\n")
    r = server.seqctl("produce", "-", input=text)
    assert r.returncode == 1
    assert ":2:" in r.stderr and ":3:" in r.stderr and "user_id" in r.stderr
    assert "delivered 2 events" in r.stdout
    assert list(server.wait_visible(u, 2).item_ids) == [4, 5]


def test_produce_sample(server):
    r = server.seqctl("produce", "--sample", 60, "--users", 5, check=True)
    assert "delivered 60 events" in r.stdout
    # user 1 gets events 0, 5, ..., 55: types cycle click, save, view; views pass the filter
    resp = server.wait_visible(1, 12)
    assert sorted(set(resp.event_types)) == [0, 1, 2]
    assert all(t > now_ms() - 2 * 3600000 for t in resp.timestamps_ms)
    # deterministic ids: producing again (new times) replaces, never duplicates
    first = list(resp.timestamps_ms)
    server.seqctl("produce", "--sample", 60, "--users", 5, check=True)
    again = poll(lambda: (lambda r: r if list(r.timestamps_ms)[-1] != first[-1] else None)(
        server.get(1)), "the re-sent oldest sample event to move")
    assert len(again.item_ids) == 12


def test_help():
    import subprocess
    r = subprocess.run([SEQCTL_BIN, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "produce" in r.stdout and "broker" in r.stdout


def test_every_command_has_help():
    import subprocess
    top = subprocess.run([SEQCTL_BIN, "--help"], capture_output=True, text=True).stdout
    cmds = sorted({ln.split()[0] for ln in top.splitlines()
                   if ln.startswith("  ") and not ln.startswith("   ")})
    assert {"get", "produce", "status", "broker", "build", "load", "malformed"} <= set(cmds)
    for cmd in cmds:
        r = subprocess.run([SEQCTL_BIN, cmd, "--help"], capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stderr)
        assert ("  " + cmd + " ") in r.stdout and not r.stderr
    r = subprocess.run([SEQCTL_BIN, "get", "-h"], capture_output=True, text=True)
    assert "[since, until)" in r.stdout and "cut sequence" in r.stdout and "-2h" in r.stdout


def test_get_time_forms(server):
    u, t = seed(server)  # events at t (click 77) and t - 5000 (save 88)
    def items(*args):
        r = server.seqctl("get", u, "engagements", "--json", *args, check=True)
        return [e["item_id"] for e in json.loads(r.stdout)["events"]]
    # ISO-8601 UTC: the window [t - 5000, t) holds the save only (until is exclusive)
    assert items("--since", _iso(t - 5000), "--until", _iso(t)) == [88]
    # relative: the last 10 minutes hold both; from a day ago until 10 minutes ago, nothing
    assert items("--since", "-10m") == [77, 88]
    assert items("--since", "-1d", "--until", "-10m") == []
    r = server.seqctl("get", u, "engagements", "--since", "yesterday")
    assert r.returncode == 2 and "ISO-8601" in r.stderr and "'yesterday'" in r.stderr


def test_get_prints_shortest_floats(server):
    u, t = new_user(), now_ms() - 60000
    server.producer().events([dict(user_id=u, time_ms=t, event_type="click", item_id=1,
                                   attributes={"dwell_ms": 19.99, "position": 0.1})])
    server.wait_visible(u, 1)
    r = server.seqctl("get", u, "engagements", "--json", check=True)
    assert '"dwell_ms":19.99' in r.stdout and '"position":0.1' in r.stdout, r.stdout
    assert json.loads(r.stdout)["events"][0]["columns"] == {"dwell_ms": 19.99, "position": 0.1}
    table = server.seqctl("get", u, "engagements", check=True).stdout
    assert table.splitlines()[2].split()[3:5] == ["19.99", "0.1"], table


def test_produce_without_topic_and_server_says_what_is_missing(tmp_path):
    import subprocess
    f = tmp_path / "e.jsonl"
    f.write_text('{"user_id": 1, "event_time_ms": 1, "event_type": "click"}\n')
    r = subprocess.run([SEQCTL_BIN, "--admin", "127.0.0.1:1", "produce", "--brokers",
                        "127.0.0.1:1", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "--topic not given" in r.stderr and "/status" in r.stderr, r.stderr
