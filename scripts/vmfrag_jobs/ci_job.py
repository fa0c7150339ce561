"""The main job (`scripts/vmfrag ci`): build, run the release test suites, then replay every
workload x seeds through `replay --differential` and print one table.

Results go to OUT/ci.json (one record per workload run, plus the test totals), the generated traces
to OUT/traces/. Exit 1 when a test fails, a replay diverges from the reference model or breaks an
invariant, or a workload cannot be generated or replayed.

The HTML report (scripts/vmfrag report) is written last, OUT/index.html, and its path printed.

Nothing stale looks current: the previous ci.json is removed when the job starts, traces are
written to OUT/traces.partial/ and moved to OUT/traces/ only at the end, with ci.json written
last and atomically. An interrupted run (Ctrl-C) leaves neither ci.json nor a partial trace
directory behind.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import bootstrap, build, paths, testing
from .results.provenance import provenance
from .results.writing import RunManifest, write_atomically

CI_FORMAT, CI_VERSION = "vmfrag-ci", 1


def _cli():
    return str(paths.build_dir("release") / "harness" / "cli" / "vmfrag")


def list_workloads():
    out = subprocess.run([_cli(), "workloads", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run_workload(name, seed, ops, traces_dir: Path):
    """Generates and replays one workload; returns its record for ci.json and the table."""
    trace = traces_dir / f"{name}-seed{seed}.vmtrace"
    gen = [_cli(), "gen", name, "--seed", str(seed), "-o", str(trace)]
    if ops:
        gen += ["--ops", str(ops)]
    rec = {"workload": name, "seed": seed, "trace": f"traces/{trace.name}", "replay": None, "timeline": None}
    g = subprocess.run(gen, capture_output=True, text=True, cwd=paths.REPO)
    if g.returncode != 0:
        rec.update(status="error", error=g.stderr.strip())
        return rec
    r = subprocess.run([_cli(), "replay", str(trace), "--json", "--differential", "--maps", "1"],
                       capture_output=True, text=True, cwd=paths.REPO)
    if r.returncode not in (0, 3):
        rec.update(status="error", error=r.stderr.strip())
        return rec
    res = json.loads(r.stdout)
    agree = res["divergence"] is None and res["invariant_violation"] is None
    if res["failures"] or not agree:
        # Kept where there is something to look at (the report draws the map at the first
        # failure); a clean run's replay JSON is mostly its placements, summarised in ci.json.
        replay_json = trace.with_name(trace.name.removesuffix(".vmtrace") + ".replay.json")
        replay_json.write_text(r.stdout)
        rec["replay"] = f"traces/{replay_json.name}"
    rec.update(
        status="ok" if agree else "divergence",
        error=r.stderr.strip() if not agree else "",
        ops=res["ops"],
        failures_by_kind=res["failures_by_kind"],
        peak_live_bytes=res["peak_live_bytes"],
        region_bytes=res["region_bytes"],
        external_fragmentation=res["final"]["external_fragmentation"],
        first_failure=res["failures"][0] if res["failures"] else None,
    )
    return rec


def print_table(records):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="vmfrag ci: workloads x seeds, differential replay")
    for col in ("workload", "seed", "ops", "failures by kind", "peak live", "final ext. frag", "reference"):
        table.add_column(col, justify="right" if col in ("seed", "ops", "peak live", "final ext. frag") else "left")
    for r in records:
        if r["status"] == "error":
            table.add_row(r["workload"], str(r["seed"]), "-", "ERROR", "-", "-", r["error"][:60])
            continue
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(r["failures_by_kind"].items())) or "none"
        table.add_row(r["workload"], str(r["seed"]), str(r["ops"]), kinds,
                      f"{r['peak_live_bytes'] / 2**20:.1f} MiB", f"{r['external_fragmentation']:.3f}",
                      "agrees" if r["status"] == "ok" else "DIVERGES")
    Console(width=160).print(table)


def run(args):
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "ci.json"
    summary_path.unlink(missing_ok=True)  # from an earlier run: it must not look like this one's
    partial = out_dir / "traces.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        return _run(args, out_dir, summary_path, partial)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _run(args, out_dir, summary_path, partial):
    options = {"seeds": args.seeds, "ops": args.ops}
    manifest = RunManifest(out_dir, "ci", flavour="release", options=options, command=["scripts/vmfrag", "ci"],
                           steps=("build", "tests", "workloads"))
    bootstrap.ensure_packages()
    release = build.FLAVOURS["release"]
    totals = testing.Totals()
    with manifest.step("build"):
        build.build(release)
    with manifest.step("tests"):
        testing.meson_tests(release, totals)
        testing.pytest_suites(totals)
    print(totals.line())

    records = []
    with manifest.step("workloads") as step:
        for w in list_workloads():
            for seed in range(1, args.seeds + 1):
                records.append(run_workload(w["name"], seed, args.ops, partial))
        print_table(records)
        bad = [r for r in records if r["status"] in ("error", "divergence")]
        for r in bad:
            print(f"vmfrag ci: {r['workload']} seed {r['seed']}: {r['status']}: {r['error']}", file=sys.stderr)
        summary = {"format": CI_FORMAT, "version": CI_VERSION, "provenance": provenance("release", options),
                   "tests": {"passed": totals.passed, "failed": totals.failed, "skipped": totals.skipped,
                             "broken": totals.broken},
                   "workloads": records}
        traces = out_dir / "traces"
        shutil.rmtree(traces, ignore_errors=True)
        os.replace(partial, traces)
        write_atomically(summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        step.outputs.append(summary_path.name)
    ok = totals.ok and not bad
    code = 0 if ok else 1
    from . import history, report
    manifest.finish(code)  # before the report, which shows the run as ended
    _, html = report.make_report(out_dir, history_path=history.DEFAULT_PATH
                                 if out_dir == paths.RESULTS.resolve() else out_dir / "history.sqlite")
    print(f"vmfrag ci: {'ok' if ok else 'FAILED'}: {len(records)} workload runs, {len(bad)} bad; "
          f"results in {summary_path}")
    print(f"vmfrag ci: report: {html}")
    return code
