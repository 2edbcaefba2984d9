"""Deployment files as code (issue 12, items 3 and 6): the Prometheus alert rules pass
`promtool check rules` and their unit tests (`promtool test rules`), the scrape config
passes `promtool check config`, the Grafana dashboard keeps freshness and completeness on
separate rows, every metric the rules and the dashboard name is one a live seqd exports,
and the systemd unit passes `systemd-analyze verify`. Tools that are absent skip."""
import json
import os
import re
import shutil
import subprocess

import pytest

from helpers import SEQD_BIN, SOURCE

DEPLOY = os.path.join(SOURCE, "deploy")
RULES = os.path.join(DEPLOY, "prometheus", "rules.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "seqd.json")
# Series Prometheus itself makes (not seqd's to export).
PROMETHEUS_OWN = {"up"}


def promtool(*args):
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed")
    r = subprocess.run(["promtool"] + list(args), capture_output=True, text=True,
                       cwd=os.path.join(DEPLOY, "prometheus"), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_rules_check():
    assert "SUCCESS" in promtool("check", "rules", "rules.yml")


def test_rules_unit_tests():
    assert "SUCCESS" in promtool("test", "rules", "rules_test.yml")


def test_scrape_config_check():
    promtool("check", "config", "prometheus.yml")


def rule_exprs():
    """The expr lines of rules.yml (a flat YAML read: no PyYAML needed)."""
    with open(RULES) as f:
        return [m.group(1) for m in re.finditer(r"^\s*expr:\s*(.+)$", f.read(), re.M)]


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_exprs():
    d = dashboard()
    out = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    out += [a["expr"] for a in d["annotations"]["list"] if "expr" in a]
    out += [v["query"] for v in d["templating"]["list"] if v["type"] == "query"]
    return out


# PromQL words that are not metric names: functions, aggregations, keywords, and
# label names inside by/without clauses or selectors are removed before the scan.
def metric_names(expr):
    expr = re.sub(r"\{[^}]*\}", "", expr)                 # selectors
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r'"[^"]*"', "", expr)                    # strings
    expr = re.sub(r"\[[^\]]*\]", "", expr)                 # ranges
    names = set()
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        if m.group(2):  # a function or aggregation call
            continue
        names.add(m.group(1))
    return names - {"instance"}


def test_dashboard_rows_keep_freshness_and_completeness_apart():
    rows, current = {}, None
    for p in sorted(dashboard()["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if p["type"] == "row":
            current = p["title"]
            rows[current] = []
        else:
            rows[current].extend(t["expr"] for t in p["targets"])
    fresh = [r for r in rows if r.startswith("Freshness")]
    complete = [r for r in rows if r.startswith("Completeness")]
    assert len(fresh) == 1 and len(complete) == 1, list(rows)
    assert any("watermark_age" in e for e in rows[fresh[0]])
    assert not any("batch_" in e for e in rows[fresh[0]])
    assert any("completeness_gap" in e for e in rows[complete[0]])
    assert not any("partition_" in e for e in rows[complete[0]])


def test_every_metric_named_is_exported(server):
    code, body = server.http("/metrics")
    assert code == 200
    exported = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
                for line in body.splitlines() if line and not line.startswith("#")}
    named = set()
    for e in rule_exprs() + dashboard_exprs():
        named |= metric_names(e)
    assert named, "no metric names found"
    missing = sorted(n for n in named - PROMETHEUS_OWN if n not in exported)
    assert not missing, missing
    # the scan itself finds what it must (a bug in it would pass vacuously)
    assert {"seqd_partition_watermark_age_seconds", "seqd_batch_completeness_gap_seconds",
            "seqd_grpc_request_duration_seconds_bucket", "process_cpu_seconds_total"} <= named


def test_systemd_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    with open(os.path.join(DEPLOY, "systemd", "seqd.service")) as f:
        unit = f.read()
    assert "ExecStart=/usr/local/bin/seqd " in unit
    # the installed paths do not exist here: point them at the build
    unit = unit.replace("/usr/local/bin/seqd", SEQD_BIN)
    unit = unit.replace("EnvironmentFile=/etc/seqd/seqd.env", "EnvironmentFile=-%s" %
                        os.path.join(DEPLOY, "seqd.env"))
    path = tmp_path / "seqd.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                       text=True, timeout=120)
    # verify exits 0 on unknown keys and bad values, but names the file: no such line
    complaints = [l for l in (r.stdout + r.stderr).splitlines() if "seqd.service" in l]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                   "CapabilityBoundingSet=", "SystemCallFilter=@system-service"):
        assert option in unit, option


def test_sample_config_options_are_seqd_options():
    with open(os.path.join(DEPLOY, "seqd.env")) as f:
        opts = re.search(r'SEQD_OPTS="([^"]*)"', f.read()).group(1)
    usage = subprocess.run([SEQD_BIN, "--help"], capture_output=True, text=True).stdout
    for flag in re.findall(r"--[a-z-]+", opts):
        assert flag in usage, flag
