"""Process lifecycle: clean exit on signals, refusal of invalid definitions, data kept
across restarts, definition compatibility judged against what the data was served with."""
import copy
import json
import signal

from helpers import make_test_definition, new_user, now_ms


def test_sigterm_and_sigint_exit_0(seqd_factory):
    s = seqd_factory()
    assert s.get(1).user_id == 1
    assert s.stop(signal.SIGTERM) == 0
    s2 = seqd_factory()
    assert s2.stop(signal.SIGINT) == 0


def test_invalid_definition_refused_with_path(seqd_factory):
    d = make_test_definition()
    d["sequences"][1]["max_length"] = 0
    s = seqd_factory(definition=d, expect_ready=False)
    assert s.wait_exit() != 0
    assert "sequences[1].max_length" in s.stderr_text()


def test_unknown_key_refused(seqd_factory):
    d = make_test_definition()
    d["sequences"][0]["colums"] = []
    s = seqd_factory(definition=d, expect_ready=False)
    assert s.wait_exit() != 0
    assert "sequences[0].colums" in s.stderr_text()


def test_missing_definition_file(seqd_factory, tmp_path):
    path = str(tmp_path / "nope.json")
    s = seqd_factory(definition_path=path, expect_ready=False)
    assert s.wait_exit() != 0
    assert path in s.stderr_text()


def write(tmp_path, name, d):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return str(p)


def test_restart_keeps_data_and_checks_compatibility(seqd_factory, tmp_path):
    data = str(tmp_path / "data")
    d1 = make_test_definition()
    s = seqd_factory(definition_path=write(tmp_path, "d1.json", d1), data_dir=data)
    u, t = new_user(), now_ms() - 60000
    s.producer().events([dict(user_id=u, time_ms=t, event_type="click", item_id=9,
                              event_id="keep")])
    s.wait_visible(u, 1)
    assert s.stop() == 0

    # incompatible: bucket size changed
    bad = copy.deepcopy(d1)
    bad["bucket_ms"] = 7200000
    s = seqd_factory(definition_path=write(tmp_path, "bad1.json", bad), data_dir=data,
                     expect_ready=False)
    assert s.wait_exit() != 0 and "bucket_ms" in s.stderr_text()

    # incompatible: a type removed
    bad = copy.deepcopy(d1)
    bad["sequences"][0]["event_types"] = ["click", "view"]
    s = seqd_factory(definition_path=write(tmp_path, "bad2.json", bad), data_dir=data,
                     expect_ready=False)
    assert s.wait_exit() != 0
    assert "sequences[0]" in s.stderr_text() or "engagements" in s.stderr_text()

    # compatible: a type and a column appended, a sequence added, a length changed
    d2 = copy.deepcopy(d1)
    d2["sequences"][0]["event_types"].append("share")
    d2["sequences"][0]["columns"].append("price")
    d2["sequences"][0]["max_length"] = 50
    d2["sequences"].append({"name": "later", "event_types": ["share"], "max_length": 10,
                            "retention_ms": 86400000})
    s = seqd_factory(definition_path=write(tmp_path, "d2.json", d2), data_dir=data)
    r = s.get(u)  # the data survived the restart (the embedded log did not)
    assert list(r.item_ids) == [9] and list(r.timestamps_ms) == [t]
    assert [c.name for c in r.columns] == ["dwell_ms", "position", "price"]
    assert s.status()["definition"]["sequences"][2]["name"] == "later"
    assert s.stop() == 0

    # judged against the last served definition: going back to d1 drops "share"
    s = seqd_factory(definition_path=write(tmp_path, "d1b.json", d1), data_dir=data,
                     expect_ready=False)
    assert s.wait_exit() != 0
