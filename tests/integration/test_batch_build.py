"""seqctl build without a server: a memory-bounded build (--memory-mb, sorted runs spilled
to disk and merged) writes the same SST contents as an in-memory one; JSON Lines and
length-delimited protobuf inputs of the same events build the same partition; bad records
are counted and reported with their line numbers. Inputs come from tests/tools/gen_events.py.
Contents are compared entry by entry with tests/tools/dbscan --sst (file properties such as
creation times differ between two builds)."""
import json
import os
import subprocess
import sys

from helpers import BUILD, HOUR, SEQCTL_BIN, SOURCE, make_test_definition, now_ms

DBSCAN = os.path.join(BUILD, "tests", "dbscan")
GEN_EVENTS = os.path.join(SOURCE, "tests", "tools", "gen_events.py")
B = (now_ms() // HOUR) * HOUR - 3 * 24 * HOUR
A = B - 48 * HOUR


def gen(tmp, fmt, n=40000):
    out = os.path.join(tmp, "in." + fmt)
    subprocess.run([sys.executable, GEN_EVENTS, "--n", str(n), "--users", "3000", "--start-ms",
                    str(A), "--end-ms", str(B), "--format", fmt, "--dup-every", "10",
                    "--out", out], check=True, timeout=120)
    return out


def build(tmp, name, inputs, fmt, *extra):
    d = os.path.join(tmp, "def.json")
    if not os.path.exists(d):
        with open(d, "w") as f:
            json.dump(make_test_definition(), f)
    out = os.path.join(tmp, name)
    r = subprocess.run([SEQCTL_BIN, "build", "--definition", d, "--sequence", "engagements",
                        "--start-ms", str(A), "--end-ms", str(B), "--generation", "9", "--out",
                        out, "--format", fmt] + list(extra) + inputs,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr, out


def contents(out):
    files = sorted(f for f in os.listdir(out) if f.endswith(".sst"))
    assert files and not [f for f in os.listdir(out) if f.endswith(".tmp")]  # runs removed
    text = ""
    for f in files:
        r = subprocess.run([DBSCAN, "--sst", os.path.join(out, f)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        text += r.stdout
    return text


def test_spilled_build_equals_in_memory_build(tmp_path):
    tmp = str(tmp_path)
    src = gen(tmp, "pb")
    mem, _, out_mem = build(tmp, "mem", [src], "pb")
    spilled, _, out_sp = build(tmp, "spilled", [src], "pb", "--memory-mb", "1")
    assert mem["spilled_runs"] == 0 and spilled["spilled_runs"] >= 2
    assert mem["duplicates"] == 40000 // 10 - 1 and mem["events"] == 40000 - mem["duplicates"]
    assert {k: v for k, v in mem.items() if k != "spilled_runs"} == \
        {k: v for k, v in spilled.items() if k != "spilled_runs"}
    a, b = contents(out_mem), contents(out_sp)
    assert a == b and len(a.splitlines()) > 3000


def test_jsonl_and_protobuf_inputs_build_the_same_partition(tmp_path):
    tmp = str(tmp_path)
    pb_rep, _, out_pb = build(tmp, "pb", [gen(tmp, "pb", 5000)], "pb")
    js_rep, _, out_js = build(tmp, "js", [gen(tmp, "jsonl", 5000)], "jsonl")
    assert pb_rep == js_rep
    assert contents(out_pb) == contents(out_js)


def test_bad_records_counted_with_line_numbers(tmp_path):
    tmp = str(tmp_path)
    src = os.path.join(tmp, "bad.jsonl")
    good = {"user_id": 1, "event_time_ms": A + 1, "event_type": "click", "item_id": 1,
            "event_id": "ok"}
    with open(src, "w") as f:
        f.write(json.dumps(good) + "\n")
        f.write("{not json\n")                                        # line 2
        f.write(json.dumps(dict(good, event_time_ms=B)) + "\n")        # 3: out of range
        f.write(json.dumps(dict(good, event_type="purchase")) + "\n")  # 4: unknown type
        f.write(json.dumps(dict(good, event_time_ms=now_ms() + 3600000)) + "\n")  # 5: future
    rep, err, _ = build(tmp, "out", [src], "jsonl")
    assert (rep["records"], rep["events"], rep["malformed"], rep["out_of_range"],
            rep["unknown_type"]) == (5, 1, 2, 1, 1)
    for line in (2, 3, 4, 5):
        assert "bad.jsonl:%d:" % line in err, err
