"""What an operator sees (issue 12, item 7): `seqd --check-definition`, log lines with a
level for partition assignment, loads, refused loads and malformed messages (those
rate-limited), the embedded cluster's restart (one line, offsets that make sense), and
the messages kept aside (GET /malformed, `seqctl malformed`)."""
import base64
import copy
import json
import os
import subprocess

from helpers import (HOUR, SEQD_BIN, batch_root_server, make_event, make_test_definition,
                     new_user, now_ms, pb, poll)


def write(tmp_path, name, d):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return str(p)


def check(*args):
    return subprocess.run([SEQD_BIN, "--check-definition", *args], capture_output=True,
                          text=True, timeout=60)


def test_check_definition(seqd_factory, tmp_path):
    d1 = make_test_definition()
    good = write(tmp_path, "d1.json", d1)
    r = check(good)
    assert r.returncode == 0 and r.stdout.startswith("valid: "), (r.stdout, r.stderr)
    bad = copy.deepcopy(d1)
    bad["sequences"][0]["max_length"] = 0
    r = check(write(tmp_path, "bad.json", bad))
    assert r.returncode == 2 and "invalid: " in r.stdout
    assert "sequences[0].max_length" in r.stdout
    r = check(str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "missing.json" in r.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    r = check(good, "--data-dir", str(empty))
    assert r.returncode == 0 and "no data served yet" in r.stdout

    # beside a running server on the same data dir (read-only: no lock taken)
    data = str(tmp_path / "data")
    s = seqd_factory(definition_path=good, data_dir=data)
    r = check(good, "--data-dir", data)
    assert r.returncode == 0 and "compatible: " in r.stdout, r.stdout
    d2 = copy.deepcopy(d1)
    d2["sequences"][0]["columns"].append("price")
    assert check(write(tmp_path, "d2.json", d2), "--data-dir", data).returncode == 0
    inc = copy.deepcopy(d1)
    inc["bucket_ms"] = 7200000
    r = check(write(tmp_path, "inc.json", inc), "--data-dir", data)
    assert r.returncode == 2 and "incompatible with the data in" in r.stdout
    assert "bucket_ms" in r.stdout and "to get back" in r.stdout
    stored = r.stdout.split("The stored definition:\n", 1)[1]
    assert json.loads(stored) == d1
    assert s.status()["grpc"]  # the server was not disturbed
    assert s.stop() == 0

    # a start refused for incompatibility says how to get back, too
    s = seqd_factory(definition_path=write(tmp_path, "inc2.json", inc), data_dir=data,
                     expect_ready=False)
    assert s.wait_exit() == 2
    assert "--check-definition" in s.stderr_text()


def lines_with(s, word):
    return [ln for ln in s.stderr_text().splitlines() if word in ln]


def test_logs_assignment_malformed_and_loads(tmp_path, stubs):
    s = batch_root_server(str(tmp_path))
    try:
        poll(lambda: lines_with(s, "seqd: info: kafka: assigned"), "the assignment line")
        # 40 malformed messages: a warn line names the first, the rest are held back
        u = new_user()
        p = s.producer()
        for i in range(40):
            p.raw(str(u).encode(), b"\xff\xfe bad %d" % i)
        p.raw(str(u).encode(), make_event(u, now_ms() - 1000, "click", 5, "ok").SerializeToString())
        p.flush()
        s.wait_item(u, 5)
        warn = lines_with(s, "malformed message")
        assert 1 <= len(warn) <= 4, warn
        assert warn[0].startswith("seqd: warn: kafka: malformed message kept aside: ")
        assert "seqctl malformed" in warn[0]

        # a refused load, then a committed one
        import grpc
        start = now_ms() // HOUR * HOUR - 48 * HOUR
        req = pb().LoadBatchRequest(sequence="engagements", start_ms=start, end_ms=start + HOUR,
                                    generation=7, sst_paths=[os.path.join(s.root, "no.sst")])
        try:
            s.stub().LoadBatch(req, timeout=60)
            raise AssertionError("the load should fail")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND
        refused = poll(lambda: lines_with(s, "load refused"), "the refused-load line")
        assert refused[0].startswith("seqd: warn: load refused: engagements generation 7 ")
        assert "NOT_FOUND" in refused[0]

        out = os.path.join(s.root, "part")
        src = tmp_path / "b.jsonl"
        src.write_text(json.dumps({"user_id": u, "event_time_ms": start + 1000,
                                   "event_type": "click", "item_id": 3}) + "\n")
        s.seqctl("build", "--definition", s.definition_path, "--sequence", "engagements",
                 "--start-ms", start, "--end-ms", start + HOUR, "--generation", 8, "--out",
                 out, str(src), check=True)
        s.seqctl("load", "--sequence", "engagements", "--start-ms", start, "--end-ms",
                 start + HOUR, "--generation", 8, os.path.join(out, "part-00000.sst"), check=True)
        done = poll(lambda: lines_with(s, "seqd: info: load: engagements generation 8 "),
                    "the load line")
        assert "1 files" in done[0] and "1 events" in done[0], done
    finally:
        s.kill()


def test_malformed_listing(seqd_factory):
    s = seqd_factory()
    u = new_user()
    p = s.producer()
    values = [b"\x0a\x05ab", b"not protobuf \x01\x02"]
    for v in values:
        p.raw(str(u).encode(), v)
    p.raw(str(u).encode(), make_event(u, now_ms() - 1000, "click", 6, "ok").SerializeToString())
    p.flush()
    s.wait_item(u, 6)
    code, body = s.http("/malformed?limit=10")
    assert code == 200
    doc = json.loads(body)
    assert doc["count"] == 2 and len(doc["messages"]) == 2
    got = sorted(base64.b64decode(m["value_base64"]) for m in doc["messages"])
    assert got == sorted(values)
    assert all(m["reason"] and m["value_len"] == len(base64.b64decode(m["value_base64"]))
               for m in doc["messages"])
    assert any("not protobuf \\x01\\x02" == m["value_preview"] for m in doc["messages"])
    code, body = s.http("/malformed?limit=1")
    assert code == 200 and len(json.loads(body)["messages"]) == 1
    for bad in ("limit=0", "limit=abc", "limit=1001", "limit=-1", "limit="):
        code, body = s.http("/malformed?" + bad)
        assert code == 400 and "limit" in body, (bad, code, body)
    r = s.seqctl("malformed", "--limit", 5, check=True)
    assert r.stdout.startswith("2 malformed messages kept aside")
    assert "not protobuf \\x01\\x02" in r.stdout and "offset" in r.stdout
    r = s.seqctl("malformed", "--json", check=True)
    assert json.loads(r.stdout)["count"] == 2
    assert s.seqctl("malformed", "--limit", "0").returncode == 2


def test_embedded_restart_says_so_once(seqd_factory, tmp_path):
    data = str(tmp_path / "data")
    s = seqd_factory(data_dir=data)
    u = new_user()
    s.producer().events([dict(user_id=u, time_ms=now_ms() - 1000, event_type="click",
                              item_id=i, event_id="e%d" % i) for i in range(1, 30)])
    s.wait_visible(u, 29)
    assert s.stop() == 0
    s = seqd_factory(data_dir=data)
    line = poll(lambda: lines_with(s, "starts empty"), "the embedded-restart line")
    assert len(line) == 1 and line[0].startswith("seqd: info: kafka: ")
    assert not lines_with(s, "Offset out of range") and not lines_with(s, "OFFSET")
    assert len(s.get(u).item_ids) == 29  # the store kept the events
    for part in s.status()["stream"]["partitions"]:
        assert part["next_offset"] <= max(part["high_offset"], 0), part
    v = new_user()
    s.producer().events([dict(user_id=v, time_ms=now_ms() - 1000, event_type="click",
                              item_id=1, event_id="n1")])
    s.wait_visible(v, 1)
