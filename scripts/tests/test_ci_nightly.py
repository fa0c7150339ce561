"""The two jobs users run (issue 14), end to end on the real builds: `ci` within a budget (clean,
and failing on the planted bug), a nightly killed with SIGKILL and resumed (nothing finished is run again, nothing
found is lost, every result file stays valid JSON). Plus the plan's determinism and its shards without building (test_workflows.py runs real shards
through the nightly workflow's own commands and merges them).

These start real fuzzers and replays with small budgets: about two minutes in all."""
import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vmfrag_jobs import nightly_job
from vmfrag_jobs.results import loading, schemas

WORKLOADS = [{"name": f"w{i}", "default_ops": 1000 * (i + 1)} for i in range(7)]


def vmfrag(repo, *args, **kw):
    return subprocess.run([str(repo / "scripts" / "vmfrag"), *args], capture_output=True, text=True, **kw)


def all_json_valid(root, temporaries_allowed=False):
    for p in Path(root).rglob("*.json"):
        json.loads(p.read_text())  # raises on a half-written file
    # Right after a SIGKILL a writer's temporary file may remain (nothing can remove it then); a
    # resumed run removes them.
    if not temporaries_allowed:
        assert not [p for p in Path(root).rglob("*") if p.name.endswith((".tmp", ".partial"))]


# ------------------------------------------------------------------------------------------- plan

@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_partition_the_plan(count):
    plan = nightly_job.make_plan(3600, count, WORKLOADS, fuzz_slice=60, hunt_trial=60)
    ids = [u["id"] for u in plan["units"]]
    assert len(ids) == len(set(ids))
    parts = [[u["id"] for u in nightly_job.shard_units(plan, i, count)] for i in range(1, count + 1)]
    assert sorted(sum(parts, [])) == sorted(ids)
    assert all(not set(a) & set(b) for i, a in enumerate(parts) for b in parts[i + 1:])


def test_plan_depends_on_what_shapes_it_only():
    a = nightly_job.make_plan(7200, 4, WORKLOADS)
    assert a == nightly_job.make_plan(7200, 4, WORKLOADS)
    # more machines, more rounds; hunt trials per arm = rounds, each with its own seed
    b = nightly_job.make_plan(7200, 8, WORKLOADS)
    assert b["rounds"] > a["rounds"] >= 1
    seeds = sorted(u["seed"] for u in b["units"] if u["kind"] == "hunt" and u["arm"] == "features")
    assert seeds == list(range(1, b["rounds"] + 1))
    # a short budget still gets every kind early in the plan
    c = nightly_job.make_plan(60, 1, WORKLOADS)
    assert {u["kind"] for u in c["units"][:4]} == {"workload", "fuzz", "hunt", "stress"}
    assert nightly_job.make_plan(7200, 8, WORKLOADS, seeds=2)["rounds"] == 2


def test_shard_option_is_checked(repo):
    for bad in ("0/2", "3/2", "1", "a/b"):
        r = vmfrag(repo, "nightly", "--shard", bad)
        assert r.returncode == 2 and "I/N" in r.stderr, r.stderr


# --------------------------------------------------------------------------------------------- ci

def test_ci_runs_within_its_budget_and_writes_everything(repo, tmp_path):
    out = tmp_path / "ci"
    r = vmfrag(repo, "ci", "--seconds", "30", "--out", str(out), "--no-history", "--corpus", str(tmp_path / "corpus"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].startswith("vmfrag ci: budget 30 s")
    assert r.stdout.splitlines()[-1] == f"vmfrag ci: report: {out / 'index.html'}"
    run = json.loads((out / "run.json").read_text())
    assert run["exit_code"] == 0 and run["finished"]
    statuses = {s["name"]: s["status"] for s in run["steps"]}
    assert [statuses[n] for n in ("build", "regressions", "fuzz", "workloads", "bench")] == ["done"] * 5
    assert statuses["kernel"] == "skipped"  # no --kernel
    # taken from this commit's `scripts/vmfrag test` when there is one (the test job writes it first)
    assert statuses["reliability"] in ("done", "skipped")
    if statuses["reliability"] == "done":
        rel = json.loads((out / "reliability.json").read_text())
        assert schemas.validate(schemas.RELIABILITY, 1, rel, "reliability.json") == []
        assert "Reliability" in (out / "index.html").read_text()
    ci = json.loads((out / "ci.json").read_text())
    assert schemas.validate(schemas.CI, ci["version"], ci, "ci.json") == []
    assert sum(rec["inputs"] for rec in ci["regressions"]) >= 3
    assert [f["target"] for f in ci["fuzz"]] == ["fuzz_frag_hunt", "fuzz_ops", "fuzz_phys_hunt", "fuzz_trace_parser"]
    assert all(f["execs"] > 0 for f in ci["fuzz"])
    ran = [w for w in ci["workloads"] if w["status"] != "not-run"]
    assert ran and all(w["status"] == "ok" for w in ran)
    assert ci["bench"]["status"] == "ok" and (out / "bench.json").exists()
    # a clean workload keeps no trace; a failing one keeps trace, replay JSON and timeline
    for w in ran:
        kept = [w[k] for k in ("trace", "replay", "timeline")]
        assert all(kept) if w["failures_by_kind"] else not any(kept)
        for k in filter(None, kept):
            assert (out / k).exists()
    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot()}
    assert set(suites) == {"regressions", "fuzz", "workloads", "bench"}
    assert all(s.get("failures") == "0" and s.get("errors") == "0" for s in suites.values())
    assert (tmp_path / "corpus" / "fuzz_frag_hunt").is_dir()  # the working corpus outlives the run
    loaded = loading.load([out])
    assert not loaded.damaged()
    all_json_valid(out)


def test_ci_fails_on_the_planted_bug_and_reports_it(repo, tmp_path):
    out = tmp_path / "ci"
    r = vmfrag(repo, "ci", "--planted-bug", "--seconds", "10", "--seeds", "1", "--out", str(out), "--no-history",
               "--corpus", str(tmp_path / "corpus"))
    assert r.returncode == 1, r.stdout + r.stderr
    (bug,) = [json.loads(p.read_text()) for p in (out / "bugs").glob("*.json")]
    assert bug["reproducer"] == "corpus/regressions/ops/planted-three-way-merge"
    assert "fuzz_ops_planted" in bug["command"]
    failures = [c for c in ET.parse(out / "junit.xml").getroot().iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["fuzz_ops_planted"]
    assert bug["title"] in failures[0].find("failure").text
    html = (out / "index.html").read_text()
    assert "planted-three-way-merge" in html
    assert json.loads((out / "run.json").read_text())["exit_code"] == 1


# ---------------------------------------------------------------------------------------- nightly

SMALL = ["--ops", "3000", "--fuzz-slice", "2", "--hunt-trial", "2", "--seeds", "1"]


def unit_records(out):
    return {json.loads(p.read_text())["unit"]["id"]: p for p in (out / "units").glob("*.json")}


def test_nightly_killed_with_sigkill_resumes_without_losing_or_repeating(repo, tmp_path):
    out = tmp_path / "night"
    args = [str(repo / "scripts" / "vmfrag"), "nightly", "--seconds", "120", "--out", str(out), "--jobs", "2",
            "--ops", "3000", "--fuzz-slice", "4", "--hunt-trial", "4", "--stress-ops", "240", "--seeds", "1", "--no-kernel"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.2)
            records = unit_records(out) if (out / "units").is_dir() else {}
            in_flight = [d for d in (out / "units").iterdir() if d.is_dir() and d.name not in records] \
                if (out / "units").is_dir() else []
            if len(records) >= 3 and in_flight:
                break
        else:
            pytest.fail("the nightly run never had three finished units and one in flight")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    all_json_valid(out, temporaries_allowed=True)
    before = {uid: path.read_bytes() for uid, path in unit_records(out).items()}
    findings_before = {f.relative_to(out) for f in out.rglob("finding-*.vmtrace")}
    r = vmfrag(repo, "nightly", "--resume", "--out", str(out), "--seconds", "120")
    assert r.returncode == 0, r.stdout + r.stderr
    after = unit_records(out)
    plan = json.loads((out / "plan.json").read_text())
    assert set(after) == {u["id"] for u in plan["units"]}
    for uid, content in before.items():  # finished before the kill: not run again
        assert after[uid].read_bytes() == content
    rerun = [json.loads(after[uid].read_text()) for uid in set(after) - set(before)]
    killed = [r["previous_attempt"] for r in rerun if r["previous_attempt"]]
    assert killed, "the unit in flight at the kill was set aside and run again"
    for name in killed:
        assert (out / "units" / name).is_dir()
    # what a killed attempt found is still there (moved with its directory)
    findings_after = {f.relative_to(out) for f in out.rglob("finding-*.vmtrace")}
    for f in findings_before:
        parts = f.parts
        moved = [g for g in findings_after if g.name == f.name and len(g.parts) == len(parts)]
        assert f in findings_after or moved, f
    all_json_valid(out)
    assert json.loads((out / "run.json").read_text())["exit_code"] == 0


def test_a_stress_unit_with_a_data_race_is_a_bug_in_the_report(tmp_path):
    from vmfrag_jobs import results as results_layer
    from vmfrag_jobs.results.writing import write_result
    unit = {"id": "stress.concurrency.round-3", "kind": "stress", "seed": 3, "ops": 1000, "estimate": 1.0}
    result = {"status": "bug", "exit_code": 66, "data_race": True, "seed": 3, "ops": 1000,
              "runs": [{"threads": 2, "ops_per_thread": 500, "rounds": 2, "corrupted": 0}],
              "command": "build/tsan/allocator/tests/allocator_tests --gtest_filter=ConcurrencyStress.*",
              "environment": {"VMFRAG_SEED": "3", "VMFRAG_STRESS_OPS": "1000"}}
    write_result(tmp_path / "units" / f"{unit['id']}.json",
                 {"format": schemas.NIGHTLY_UNIT, "version": 1, "unit": unit, "started": "2026-12-01T00:00:00+00:00",
                  "finished": "2026-12-01T00:01:00+00:00", "seconds": 60.0, "bug": True, "previous_attempt": None,
                  "result": result})
    tables = results_layer.compute(loading.load([tmp_path]))
    (bug,) = tables["bugs"]
    assert bug["kind"] == "sanitizer" and "data race" in bug["title"]
    assert bug["command"].startswith("VMFRAG_SEED=3 VMFRAG_STRESS_OPS=1000 build/tsan/")
    (kind,) = tables["units"]["kinds"]
    assert (kind["kind"], kind["finished"], kind["bugs"]) == ("stress", 1, 1)
    assert tables["units"]["stress_clean_ops"] == 0  # a run with a race is not counted as clean


def test_findings_are_confirmed_in_every_findings_directory(monkeypatch, tmp_path):
    from vmfrag_jobs import job_units, kernel_job
    for d in ("fuzz/fuzz_frag_hunt/findings", "units/fuzz.fuzz_frag_hunt.slice-1/findings", "units/x/findings"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "fuzz/fuzz_frag_hunt/findings/a.json").write_text("{}")
    (tmp_path / "units/fuzz.fuzz_frag_hunt.slice-1/findings/b.json").write_text("{}")
    calls = []

    def confirm(findings, series, log):
        calls.append((findings.relative_to(tmp_path).as_posix(), series))
        return [{"status": "identical"}, {"status": "differs"}]
    monkeypatch.setattr(kernel_job, "confirm_findings", confirm)
    counts = job_units.confirm_findings_under(tmp_path, ("6.1", "6.12"))
    assert calls == [("fuzz/fuzz_frag_hunt/findings", ["6.1", "6.12"]),
                     ("units/fuzz.fuzz_frag_hunt.slice-1/findings", ["6.1", "6.12"])]  # the empty one skipped
    assert counts == {"identical": 2, "differs": 2, "not-confirmable": 0, "error": 0}


def test_kernel_option_is_checked(repo):
    for job in ("ci", "nightly"):
        r = vmfrag(repo, job, "--kernel", "5.10")
        assert r.returncode == 2 and "is not a comma-separated list of 6.1, 6.12" in r.stderr, r.stderr


def test_a_build_failure_is_a_setup_error_exit_2(monkeypatch, tmp_path, capsys):
    from vmfrag_jobs import ci_job, cli as cli_module

    def broken(flavour, log=None):
        raise ci_job.build.BuildError("building release failed")
    monkeypatch.setattr(ci_job.bootstrap, "ensure_packages", lambda: [])
    monkeypatch.setattr(ci_job.build, "build", broken)
    for argv in (["ci", "--out", str(tmp_path / "ci"), "--no-history"], ["nightly", "--out", str(tmp_path / "n")]):
        args = cli_module.parser().parse_args(argv)
        assert args.func(args) == 2
        assert "vmfrag: error: building release failed" in capsys.readouterr().err
    assert json.loads((tmp_path / "ci" / "run.json").read_text())["exit_code"] == 2


def test_progress_on_a_terminal_is_a_rich_bar_and_plain_lines_otherwise(monkeypatch, capsys):
    unit = {"id": "workload.w0.seed-1", "kind": "workload"}
    result = {"status": "ok", "failures_by_kind": {"virtual-fragmentation": 2}}
    monkeypatch.setattr(nightly_job.sys.stdout, "isatty", lambda: False)
    plain = nightly_job.Progress(total=3, already=1)
    plain.finished(unit, result, bug=False)
    plain.stop()
    assert capsys.readouterr().out == "vmfrag nightly: 2/3 workload.w0.seed-1: ok (virtual-fragmentation 2)\n"
    monkeypatch.setattr(nightly_job.sys.stdout, "isatty", lambda: True)
    bar = nightly_job.Progress(total=3, already=1)
    assert bar.bar is not None  # rich.progress on a terminal
    bar.finished(unit, result, bug=True)
    assert bar.bar.tasks[0].completed == 2 and bar.bar.tasks[0].description == "bugs 1"
    bar.stop()


def test_fail_on_finding_counts_findings_at_or_below_the_severity(tmp_path):
    from vmfrag_jobs import ci_job
    findings = tmp_path / "fuzz" / "fuzz_frag_hunt" / "findings"
    findings.mkdir(parents=True)
    for name, doc in (("a.json", {"format": schemas.FINDING, "severity": 0.55}),
                      ("b.json", {"format": schemas.FINDING, "severity": 0.61}),
                      ("a.linux-6.1.json", {"format": "vmfrag-confirmation", "severity": 0.1}),  # not a finding
                      ("c.json", {"format": schemas.FINDING, "severity": None})):
        (findings / name).write_text(json.dumps(doc))
    run = ci_job.CiRun.__new__(ci_job.CiRun)
    run.out = tmp_path
    assert run.findings_at_or_below(0.6) == ["finding fuzz/fuzz_frag_hunt/findings/a.json: severity 0.5500 <= 0.6"]
    assert len(run.findings_at_or_below(0.61)) == 2 and run.findings_at_or_below(0.5) == []
