"""The units of work the ci and nightly jobs are made of. Each runs C++ tools or libFuzzer (never
allocator logic of its own), writes what it produced under the directory it is given, and returns
one JSON-ready record that says what happened.

  replay_regressions  corpus/regressions/ through the sanitizer (fuzz) flavour's targets
  run_workload        `vmfrag gen` + `vmfrag replay --differential --check-every`
  run_fuzz            one libFuzzer target for a time slice (fuzz_job.run)
  run_quick_bench     vmfrag_bench's quick set (bench_job)

What a workload run keeps is decided here, once, for both jobs: a clean run keeps only its record
(its trace is `vmfrag gen W --seed S --ops N` away); a run that failed an allocation, diverged
from the reference model, broke an invariant or errored keeps its trace, its replay JSON (the
address-space map at its first failure) and its timeline.
"""
import json
import os
import re
import subprocess
import time
from pathlib import Path

from . import bench_results, fuzz_job, fuzz_records, paths
from .results.writing import now_iso, write_atomically

# The release flavour's CLI; the sanitizer flavour is `fuzz` (clang, ASan+UBSan, libFuzzer).
RELEASE_CLI = ("harness", "cli", "vmfrag")
# Which fuzz target replays which regressions directory (corpus/regressions/<name>).
# The fuzz_ops built against the allocator with the planted coalescing bug (-Dplanted_bug_test):
# ci --planted-bug runs it in fuzz_ops's place, so tests can see a real bug reach the report.
PLANTED_OPS_TARGET = "fuzz_ops_planted"
# check() every this many ops during a workload replay: catches a broken invariant near where it
# broke without making check() (O(n) in live areas) the cost of the run.
CHECK_EVERY = 1000
# A kept timeline holds about this many sampled ops (plus every failed op and the last): the
# report draws 150-300 points, and a full timeline is 110 bytes an op (22 MB at 200,000 ops).
TIMELINE_POINTS = 4000


def release_tool(*parts):
    return paths.build_dir("release").joinpath(*parts)


def fuzz_tool(name):
    return paths.build_dir("fuzz") / "fuzz" / name


def list_workloads():
    out = subprocess.run([str(release_tool(*RELEASE_CLI)), "workloads", "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


# ----------------------------------------------------------------------------------- regressions

def replay_regressions(out_dir: Path, provenance, planted=False):
    """Replays every corpus/regressions/<name>/ input through its sanitizer-instrumented target
    (libFuzzer -runs=0: no mutation). Any crash, sanitizer report or failed check is a bug, written
    to out_dir/bugs/<id>.json (vmfrag-bug, as fuzz_records makes it for a fuzzing crash) with the
    input as reproducer. Returns the records."""
    records = []
    for target, name in sorted(fuzz_job.TARGETS.items()):  # corpus/regressions/<name>/ per target
        binary_name = PLANTED_OPS_TARGET if planted and target == "fuzz_ops" else target
        inputs = paths.REPO / "corpus" / "regressions" / name
        files = sorted(p for p in inputs.iterdir() if p.is_file()) if inputs.is_dir() else []
        rec = {"target": binary_name, "inputs": len(files), "status": "ok", "bugs": []}
        for f in files:
            cmd = [str(fuzz_tool(binary_name)), "-runs=0", str(f)]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                               env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
            if r.returncode == 0:
                continue
            reproducer = f.relative_to(paths.REPO).as_posix()
            bug = fuzz_records.bug_record(binary_name, r.stdout, reproducer, " ".join(cmd), now_iso(), provenance)
            path = out_dir / "bugs" / f"{bug['id']}.json"
            write_atomically(path, json.dumps(bug, indent=2) + "\n")
            (out_dir / "bugs" / f"{bug['id']}.log").write_text(r.stdout)
            rec["status"] = "bug"
            rec["bugs"].append({"input": reproducer, "bug": f"bugs/{bug['id']}.json",
                                "title": bug["title"]})
        records.append(rec)
    return records


# -------------------------------------------------------------------------------------- workloads

def run_workload(name, seed, ops, out_dir: Path, check_every=CHECK_EVERY):
    """Generates and replays one workload with the reference model beside it; returns its record.
    Traces, replay JSON and timeline go to out_dir/traces/ and stay only when there is something to
    look at (see the module comment)."""
    traces = out_dir / "traces"
    traces.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-seed{seed}"
    trace, replay_json, timeline = (traces / f"{stem}.vmtrace", traces / f"{stem}.replay.json",
                                    traces / f"{stem}.timeline.jsonl")
    cli = str(release_tool(*RELEASE_CLI))
    gen = [cli, "gen", name, "--seed", str(seed), "-o", str(trace)] + (["--ops", str(ops)] if ops else [])
    rec = {"workload": name, "seed": seed, "ops_requested": ops, "trace": None, "replay": None, "timeline": None}
    started = time.monotonic()
    g = subprocess.run(gen, capture_output=True, text=True, cwd=paths.REPO)
    if g.returncode != 0:
        rec.update(status="error", error=g.stderr.strip(), seconds=round(time.monotonic() - started, 3))
        return rec
    r = subprocess.run([cli, "replay", str(trace), "--json", "--differential", "--maps", "1",
                        "--check-every", str(check_every), "--timeline", str(timeline),
                        "--timeline-every", str(max(1, (ops or 0) // TIMELINE_POINTS))],
                       capture_output=True, text=True, cwd=paths.REPO)
    rec["seconds"] = round(time.monotonic() - started, 3)
    if r.returncode not in (0, 3):
        rec.update(status="error", error=r.stderr.strip(), trace=f"traces/{trace.name}")
        timeline.unlink(missing_ok=True)
        return rec
    res = json.loads(r.stdout)
    agree = res["divergence"] is None and res["invariant_violation"] is None
    if res["failures"] or not agree:
        write_atomically(replay_json, r.stdout)
        rec.update(trace=f"traces/{trace.name}", replay=f"traces/{replay_json.name}",
                   timeline=f"traces/{timeline.name}")
    else:
        trace.unlink()
        timeline.unlink(missing_ok=True)
    rec.update(
        status="ok" if agree else "divergence",
        error="" if agree else r.stderr.strip(),
        ops=res["ops"],
        failures_by_kind=res["failures_by_kind"],
        peak_live_bytes=res["peak_live_bytes"],
        region_bytes=res["region_bytes"],
        external_fragmentation=res["final"]["external_fragmentation"],
        first_failure=_without_map(res["failures"][0]) if res["failures"] else None,
    )
    return rec


def _without_map(failure):
    # The map is in the kept replay JSON; ci.json stays a summary.
    return {k: v for k, v in failure.items() if k != "map"}


# ------------------------------------------------------------------------------------------ fuzzing

def run_fuzz(target, seconds, out_dir: Path, corpus_dir: Path, seed=None, log=print):
    """One fuzz target for `seconds` with the working corpus `corpus_dir` (kept between runs):
    fuzz_job writes crashes, findings and stats under out_dir. Returns fuzz_job's summary; out_rel is where it wrote, relative to the results directory."""
    corpus_dir.mkdir(parents=True, exist_ok=True)
    return fuzz_job.run(target, seconds=seconds, corpus=str(corpus_dir), out=str(out_dir), seed=seed,
                        do_build=False, log=log)


def fuzz_record(target, summary, out_rel):
    """The record of one fuzz run (ci.json's `fuzz` entries, a nightly fuzz unit's result), from
    fuzz_job's summary; out_rel is where it wrote, relative to the results directory."""
    stats = summary.get("final_stats") or {}
    last = summary.get("last_status") or {}
    return {"target": target, "seconds": summary.get("seconds"), "wall_seconds": summary.get("wall_seconds"),
            "execs": stats.get("number_of_executed_units") or last.get("execs") or 0,
            "exit_code": summary.get("exit_code"), "crashes": list(summary.get("crashes") or []),
            "findings": list(summary.get("findings") or []), "best_severity": summary.get("best_severity"),
            "out": out_rel}


# ---------------------------------------------------------------------------------------- benchmarks

QUICK_REPETITIONS = 3


def run_quick_bench(out_path: Path, provenance):
    """vmfrag_bench's quick set, 3 repetitions: its Google Benchmark JSON at out_path and the issue-12
    ratio definitions beside it (bench-ratios.json), for the report. Returns a record."""
    from . import bench_job
    started = time.monotonic()
    partial = out_path.with_name(f".{out_path.name}.partial")
    cmd = [str(bench_job.bench_binary()), "--vmfrag_quick", f"--benchmark_out={partial}",
           "--benchmark_out_format=json", f"--benchmark_repetitions={QUICK_REPETITIONS}",
           f"--benchmark_min_time={bench_job.DEFAULT_MIN_TIME[True]}", "--benchmark_display_aggregates_only=true"]
    try:
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 or not partial.exists():
            return {"status": "error", "error": f"vmfrag_bench exited {r.returncode}: {r.stderr.strip()[-300:]}",
                    "seconds": round(time.monotonic() - started, 3)}
        doc = json.loads(partial.read_text())
    finally:
        partial.unlink(missing_ok=True)
    doc["context"]["vmfrag.command"] = " ".join(cmd[:2] + cmd[4:])
    write_atomically(out_path, json.dumps(doc, indent=2) + "\n")
    ratios = {"format": "vmfrag-bench-ratios", "version": 1, "provenance": provenance,
              "ratios": bench_results.ratio_definitions(doc)}
    ratios_path = out_path.with_name("bench-ratios.json")
    write_atomically(ratios_path, json.dumps(ratios, indent=2) + "\n")
    divergences = bench_results.placement_divergences(doc)
    problems = bench_results.validate(doc)
    return {"status": "divergence" if divergences else "invalid" if problems else "ok",
            "benchmarks": len(doc.get("benchmarks") or []), "divergences": divergences, "problems": problems,
            "unsupported": sorted(k for k, v in doc["context"].items() if str(v).startswith("unsupported")),
            "json": out_path.name, "ratios": ratios_path.name, "seconds": round(time.monotonic() - started, 3)}


# ----------------------------------------------------------------------------- concurrency stress

STRESS_LINE = re.compile(r"\[ stress \] (\d+) threads x (\d+) ops x (\d+) rounds: (\d+) corrupted areas")


def run_concurrency_stress(seed, ops, out_dir: Path):
    """allocator/tests/concurrency_stress_test.cpp's long form in the TSan flavour: 2, 4, 8 and 16
    threads on one memfd Vmalloc, `ops` ops per thread count and round, seed `seed`. A data race
    (TSan report), a corrupted byte or a failed check() is a bug. Returns a record."""
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = paths.build_dir("tsan") / "allocator" / "tests" / "allocator_tests"
    cmd = [str(binary), "--gtest_filter=ConcurrencyStress.*"]
    started = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                       env=dict(os.environ, VMFRAG_SEED=str(seed), VMFRAG_STRESS_OPS=str(ops),
                                TSAN_OPTIONS="halt_on_error=1"))
    (out_dir / "stress.log").write_text(r.stdout)
    runs = [{"threads": int(m.group(1)), "ops_per_thread": int(m.group(2)), "rounds": int(m.group(3)),
             "corrupted": int(m.group(4))} for m in map(STRESS_LINE.search, r.stdout.splitlines()) if m]
    race = "WARNING: ThreadSanitizer" in r.stdout
    return {"status": "ok" if r.returncode == 0 and not race and runs else "bug", "exit_code": r.returncode,
            "data_race": race, "seed": seed, "ops": ops, "runs": runs, "command": " ".join(cmd),
            "environment": {"VMFRAG_SEED": str(seed), "VMFRAG_STRESS_OPS": str(ops)},
            "log": "stress.log", "seconds": round(time.monotonic() - started, 3)}


# ------------------------------------------------------------------------------ kernel confirmation

KERNEL_SERIES = ("6.1", "6.12")


def kernel_series_arg(text):
    """'6.1' or '6.1,6.12' -> a tuple of series, for --kernel."""
    import argparse
    series = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in series if s not in KERNEL_SERIES]
    if not series or bad:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of {', '.join(KERNEL_SERIES)}")
    return series


def confirm_findings_under(out_dir: Path, series, log=print):
    """Every finding under out_dir (the `findings/` directories the fuzz units wrote) replayed on
    the real kernels `series` (kernel_job.confirm_findings: one vmfrag-confirmation record beside
    each finding, resumable). Returns {"confirmed": n, "differs": n, "not_confirmable": n, "error": n}."""
    from . import kernel_job
    counts = {"identical": 0, "differs": 0, "not-confirmable": 0, "error": 0}
    for findings in sorted(p for p in Path(out_dir).rglob("findings") if p.is_dir()):
        if not any(findings.glob("*.json")):
            continue
        for rec in kernel_job.confirm_findings(findings, list(series), log=log):
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    return counts
