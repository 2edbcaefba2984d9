"""seqctl build --format avro (engine/input_avro.h) on files written by Python's avro package
(python3-avro, the reference implementation): every codec (null, deflate, snappy) and every
field variant the contract lists (ids long, int, string and nullable; event_time_ms long,
timestamp-millis, timestamp-micros and nullable; event_id absent or null -> derived;
attributes a map of double, nullable, with null values; extra fields ignored) build exactly
the SST contents the same events build from JSON Lines; malformed records (null or missing
required fields, negative ids, bad decimal ids) are counted and reported as FILE:RECORD;
a field of a type that can never fit, a damaged file and a file that is not Avro fail the
build with a message naming the file."""
import datetime
import json
import os
import subprocess

import avro.datafile
import avro.io
import avro.schema
import pytest

from helpers import BUILD, HOUR, SEQCTL_BIN, SOURCE, make_test_definition, now_ms

DBSCAN = os.path.join(BUILD, "tests", "dbscan")
AVSC = os.path.join(SOURCE, "proto", "seqd", "v1", "event.avsc")
B = (now_ms() // HOUR) * HOUR - 3 * 24 * HOUR
A = B - 24 * HOUR


def nullable(t):
    return ["null", t]


def schema(user="long", time="long", typ="string", item="long", eid="string",
           attrs={"type": "map", "values": "double"}, extra=True, drop=()):
    fields = [("user_id", user), ("event_time_ms", time), ("event_type", typ),
              ("item_id", item), ("event_id", eid), ("attributes", attrs)]
    out = [{"name": n, "type": t} for n, t in fields if n not in drop and t is not None]
    if extra:  # what a warehouse export carries besides: ignored
        out.insert(1, {"name": "country", "type": "string"})
        out.append({"name": "ctx", "type": {"type": "record", "name": "Ctx", "fields": [
            {"name": "app", "type": "string"}, {"name": "ver", "type": "int"}]}})
    return avro.schema.parse(json.dumps({"type": "record", "name": "E", "fields": out}))


def write_avro(path, sch, records, codec="null"):
    with open(path, "wb") as f:
        w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), sch, codec=codec)
        names = {f.name for f in sch.fields}
        for r in records:
            r = {k: v for k, v in r.items() if k in names}
            if "country" in names:
                r.setdefault("country", "fr")
                r.setdefault("ctx", {"app": "ios", "ver": 3})
            w.append(r)
        w.close()
    return path


def base_events(n=3000, users=200):
    out = []
    for i in range(n):
        e = {"user_id": 1 + i % users, "event_time_ms": A + (i * 7919) % (24 * HOUR),
             "event_type": ["click", "save", "view"][i % 3], "item_id": 10 + i,
             "event_id": "a%d" % i, "attributes": {"dwell_ms": float(400 + i % 900)}}
        if i % 5 == 0:
            e["attributes"]["position"] = float(i % 7)
        if i % 11 == 0:
            e["event_id"] = None  # derived
        out.append(e)
    return out


def to_jsonl(path, evs):
    with open(path, "w") as f:
        for e in evs:
            e = {k: v for k, v in e.items() if v is not None}
            f.write(json.dumps(e) + "\n")
    return path


def build(tmp, name, fmt, inputs, ok=True):
    d = os.path.join(tmp, "def.json")
    if not os.path.exists(d):
        with open(d, "w") as f:
            json.dump(make_test_definition(), f)
    out = os.path.join(tmp, name)
    r = subprocess.run([SEQCTL_BIN, "build", "--definition", d, "--sequence", "engagements",
                        "--start-ms", str(A), "--end-ms", str(B), "--generation", "9", "--out",
                        out, "--format", fmt] + inputs, capture_output=True, text=True,
                       timeout=300)
    assert (r.returncode == 0) == ok, r.stderr
    return (json.loads(r.stdout) if ok else None), r.stderr, out


def contents(out):
    text = ""
    for f in sorted(x for x in os.listdir(out) if x.endswith(".sst")):
        r = subprocess.run([DBSCAN, "--sst", os.path.join(out, f)], capture_output=True,
                           text=True, timeout=120, check=True)
        text += r.stdout
    return text


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("avroref"))
    evs = base_events()
    rep, _, out = build(tmp, "ref", "jsonl", [to_jsonl(os.path.join(tmp, "ref.jsonl"), evs)])
    assert rep["events"] > 1000 and rep["filtered"] > 0
    return evs, rep, contents(out)


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def as_variant(e, i, ids, time):
    """Python's avro writes logical timestamps from datetimes (exact to the microsecond)."""
    r = dict(e)
    if ids == "string":
        r["user_id"], r["item_id"] = str(e["user_id"]), str(e["item_id"])
    elif ids == "int":
        r["user_id"], r["item_id"] = int(e["user_id"]), int(e["item_id"])
    if time == "micros":  # sub-ms parts are dropped
        r["event_time_ms"] = EPOCH + datetime.timedelta(
            microseconds=e["event_time_ms"] * 1000 + (i % 1000))
    elif time == "millis":
        r["event_time_ms"] = EPOCH + datetime.timedelta(milliseconds=e["event_time_ms"])
    return r


VARIANTS = [
    # (id type, time type, nullable everything, codec)
    ("long", "long", False, "null"),
    ("string", "millis", True, "deflate"),
    ("int", "micros", False, "snappy"),
    ("long", "micros", True, "null"),
    ("string", "long", False, "snappy"),
    ("long", "millis", True, "deflate"),
]


@pytest.mark.parametrize("ids,time,nulls,codec", VARIANTS)
def test_every_variant_and_codec_builds_what_jsonl_builds(tmp_path, reference, ids, time,
                                                          nulls, codec):
    evs, rep, text = reference
    idt = {"long": "long", "string": "string", "int": "int"}[ids]
    tt = {"long": "long", "millis": {"type": "long", "logicalType": "timestamp-millis"},
          "micros": {"type": "long", "logicalType": "timestamp-micros"}}[time]
    at = {"type": "map", "values": ["null", "double"] if nulls else "double"}
    wrap = nullable if nulls else (lambda t: t)
    sch = schema(user=wrap(idt), time=wrap(tt), typ=wrap("string"), item=wrap(idt),
                 eid=nullable("string"), attrs=wrap(at))
    recs = []
    for i, e in enumerate(evs):
        r = as_variant(e, i, ids, time)
        if nulls and i % 13 == 0:
            r["attributes"] = dict(r["attributes"], unused=None)  # a null map value: skipped
        recs.append(r)
    half = len(recs) // 2  # two files, one batch
    f1 = write_avro(str(tmp_path / "a.avro"), sch, recs[:half], codec)
    f2 = write_avro(str(tmp_path / "b.avro"), sch, recs[half:], codec)
    got, _, out = build(str(tmp_path), "o", "avro", [f1, f2])
    assert got == rep
    assert contents(out) == text


def test_shipped_schema_and_absent_optional_fields(tmp_path, reference):
    evs, rep, text = reference
    sch = avro.schema.parse(open(AVSC).read())
    recs = [{k: v for k, v in e.items() if k != "event_id" or v is not None} for e in evs]
    got, _, out = build(str(tmp_path), "o", "avro",
                        [write_avro(str(tmp_path / "s.avro"), sch, recs, "deflate")])
    assert got == rep and contents(out) == text
    # a schema without event_id and attributes: ids derived, no columns
    sch2 = schema(eid=None, attrs=None, extra=False)
    recs2 = [{"user_id": 7, "event_time_ms": A + 5, "event_type": "click", "item_id": 1}]
    got, _, _ = build(str(tmp_path), "o2", "avro",
                      [write_avro(str(tmp_path / "t.avro"), sch2, recs2)])
    assert got["events"] == 1 and got["malformed"] == 0


def test_malformed_records_reported_with_file_and_record_number(tmp_path):
    sch = schema(user=nullable("long"), time=nullable("long"), typ=nullable("string"),
                 item=nullable("long"), eid=nullable("string"))
    good = {"user_id": 3, "event_time_ms": A + 1000, "event_type": "click", "item_id": 4,
            "event_id": "g", "attributes": {}}
    recs = [good,
            dict(good, user_id=None),          # 2: null required field
            dict(good, event_time_ms=None),    # 3
            dict(good, event_type=None),       # 4
            dict(good, user_id=-5),            # 5: negative id
            dict(good, item_id=-1),            # 6
            dict(good, event_id="h"),          # 7: fine
            dict(good, user_id=0)]             # 8: zero is "not set"
    f = write_avro(str(tmp_path / "bad.avro"), sch, recs)
    got, err, _ = build(str(tmp_path), "o", "avro", [f])
    assert got["records"] == 8 and got["malformed"] == 6 and got["events"] == 2
    for rec, what in ((2, "user_id"), (3, "event_time_ms"), (4, "event_type"), (5, "user_id"),
                      (6, "item_id"), (8, "user_id")):
        assert "%s:%d: %s" % (f, rec, what) in err, err
    # string ids that are not decimal numbers
    sch_s = schema(user="string", item="string")
    f2 = write_avro(str(tmp_path / "bads.avro"), sch_s,
                    [dict(good, user_id="12x", item_id="1"), dict(good, user_id="5", item_id="1")])
    got, err, _ = build(str(tmp_path), "o2", "avro", [f2])
    assert got["malformed"] == 1 and got["events"] == 1
    assert "%s:1: user_id" % f2 in err
    # a schema without a required field: every record malformed, named
    f3 = write_avro(str(tmp_path / "notype.avro"), schema(drop=("event_type",)),
                    [dict(good), dict(good, event_id="x")])
    got, err, _ = build(str(tmp_path), "o3", "avro", [f3])
    assert got["malformed"] == 2 and "%s:1: event_type: missing" % f3 in err


def test_unfit_types_damaged_and_foreign_files_fail_naming_the_file(tmp_path):
    good = {"user_id": 3, "event_time_ms": A + 1000, "event_type": "click", "item_id": 4,
            "event_id": "g", "attributes": {}}
    f = write_avro(str(tmp_path / "dbl.avro"), schema(user="double"), [dict(good, user_id=3.0)])
    _, err, _ = build(str(tmp_path), "o1", "avro", [f], ok=False)
    assert f in err and "user_id" in err
    f = write_avro(str(tmp_path / "attrs.avro"), schema(attrs={"type": "map", "values": "string"}),
                   [dict(good, attributes={"a": "b"})])
    _, err, _ = build(str(tmp_path), "o2", "avro", [f], ok=False)
    assert f in err and "attributes" in err
    # damaged: a deflate file cut in its only block
    recs = [dict(good, event_id="e%d" % i) for i in range(2000)]
    f = write_avro(str(tmp_path / "cut.avro"), schema(), recs, "deflate")
    data = open(f, "rb").read()
    cut = str(tmp_path / "cut2.avro")
    open(cut, "wb").write(data[:len(data) * 2 // 3])
    _, err, _ = build(str(tmp_path), "o3", "avro", [cut], ok=False)
    assert cut in err
    # not Avro at all
    js = str(tmp_path / "x.jsonl")
    open(js, "w").write(json.dumps(good) + "\n")
    _, err, _ = build(str(tmp_path), "o4", "avro", [js], ok=False)
    assert js in err and "Avro" in err
    # missing file
    _, err, _ = build(str(tmp_path), "o5", "avro", [str(tmp_path / "nope.avro")], ok=False)
    assert "nope.avro" in err
