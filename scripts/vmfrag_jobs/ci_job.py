"""The main job, `scripts/vmfrag ci`: what a CI pipeline runs on every change.

It builds what is missing (release; the sanitizer flavour `fuzz` when clang is there), then spends
its time budget (--seconds, default 300, printed up front; building is not counted) on:

  1. regressions  corpus/regressions/ replayed through the ASan+UBSan targets: any failure is a bug
  2. workloads    every `gen` workload x --seeds, `replay --differential --check-every 1000`
  3. fuzz         every libFuzzer target for its share, on its working corpus (kept between runs
                  under --corpus), crashes as bugs, fuzz_frag_hunt's findings minimised
  4. bench        vmfrag_bench's quick set (3 repetitions), ratios beside issue 12's goals
  +  reliability  issue 15's figures (fault injection, misuse, concurrency stress, malformed input)
                  from the last `scripts/vmfrag test` of this commit (results/reliability.json), when
                  there is one: unit tests belong to `test`, so ci does not run them again
  5. kernel       with --kernel 6.1[,6.12]: every finding replayed on that real kernel under QEMU
                  (`confirm`), marked in the report "confirmed on Linux X" or with the difference;
                  not counted in the budget (about 10-20 s a finding here, plus a first download)

Steps 2 and 3 share what the budget leaves after step 1 and an allowance for step 4: the workloads
may use up to half of it, and fuzzing gets whatever they leave (fuzzing is what more time buys
most). A unit is started only while its step has time left, and the units that were not started
are recorded as `not-run` (a budget that is too small shows, it does not pass silently). A unit
already running finishes, so a run can end a little after its budget.

Results go to a new directory, results/ci-<UTC time>/ (or --out), with results/latest pointing to
it: run.json (the steps as they start and end), ci.json (every unit's record, rewritten as each step
finishes), junit.xml, bugs/, fuzz/<target>/ (findings, crashes, stats), traces/ (see below),
bench.json, then index.html, whose path is printed last. The run is appended to the history
database (results/history.sqlite) that the report's trend reads.

Kept: every bug with its reproducer; every finding with its minimised trace; for a workload run that
failed an allocation, diverged or errored, its trace, replay JSON (the map at the first failure) and
timeline. Not kept: a clean workload run's trace (`scripts/vmfrag gen W --seed S --ops N` writes it
again, byte for byte) and the fuzzers' scratch.

Exit codes: 0 no bug (findings are results), 1 a bug (sanitizer report, crash, divergence from the
reference model, broken invariant, a tool that failed, benchmarks placing differently) or, with
--fail-on-finding S, a finding of severity <= S; 2 usage or setup error; 130 interrupted.
"""
import concurrent.futures
import json
import math
import os
import sys
import time
from pathlib import Path

from . import bootstrap, build, fuzz_job, job_units, junit, paths
from .results import schemas
from .results.provenance import provenance
from .results.writing import RunManifest, new_run_directory, point_latest, write_atomically

CI_FORMAT, CI_VERSION = schemas.CI, 2
STEPS = ("build", "regressions", "workloads", "fuzz", "bench", "reliability", "kernel")
FUZZ_TARGETS = tuple(sorted(fuzz_job.TARGETS))  # every target scripts/vmfrag fuzz offers
# What the quick benchmark set takes here (3 repetitions: 10 s on a loaded 2-vCPU VM), reserved at
# the end of the budget so the earlier steps cannot eat it.
BENCH_ALLOWANCE_SECONDS = 15
# The default ops of a few workloads are 2,000,000 (test_vmalloc's loop counts): capped in ci so one
# unit takes seconds, not a minute. nightly replays them whole.
CI_OPS_CAP = 200_000
WORKLOAD_SHARE = 0.5  # at most, of the time left for steps 2 and 3; fuzzing gets the rest


def add_arguments(p, bounded_int, bounded_float):
    p.add_argument("--seconds", type=bounded_int(10, 7 * 86400), default=300, metavar="S",
                   help="time budget for steps 1-4, 10 to 604800 (default 300); building is not counted")
    p.add_argument("--seeds", type=bounded_int(1, 1000), default=2, metavar="N",
                   help="seeds per workload, 1 to 1000 (default 2)")
    p.add_argument("--ops", type=bounded_int(1, 10**9), default=None, metavar="N",
                   help=f"ops per workload, 1 to 1000000000 (default: each workload's own, at most {CI_OPS_CAP:,})")
    p.add_argument("--jobs", type=bounded_int(1, 256), default=os.cpu_count() or 1, metavar="J",
                   help="units run in parallel, 1 to 256 (default: the core count)")
    p.add_argument("--out", metavar="DIR",
                   help="the run's results directory, new or empty (default: a new results/ci-<UTC time>/)")
    p.add_argument("--corpus", metavar="DIR", default=str(paths.RESULTS / "corpus"),
                   help="working fuzz corpora, one directory per target, kept between runs (default results/corpus)")
    p.add_argument("--history", metavar="DB", default=str(paths.RESULTS / "history.sqlite"),
                   help="the run history the report's trend reads (default results/history.sqlite)")
    p.add_argument("--no-history", action="store_true", help="do not record this run in the history")
    p.add_argument("--fail-on-finding", type=bounded_float(0.0, 1.0), metavar="SEVERITY",
                   help="exit 1 when a finding has severity <= SEVERITY (0..1; lower is worse fragmentation)")
    p.add_argument("--kernel", type=job_units.kernel_series_arg, metavar="SERIES",
                   help="confirm every finding on these real kernels, e.g. 6.1 or 6.1,6.12 (default: no kernel)")
    p.add_argument("--planted-bug", action="store_true",
                   help="test the pipeline: replay the regressions with fuzz_ops built on the planted "
                        "coalescing bug (-Dplanted_bug_test), which must make the run fail")
    return p


def check_out(args):
    """The run directory, made now; None (after printing why) when --out cannot be used."""
    if args.out is None:
        return new_run_directory(paths.RESULTS, "ci")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"vmfrag: error: --out {args.out}: not a directory", file=sys.stderr)
        return None
    if out.is_dir() and any(out.iterdir()):
        print(f"vmfrag: error: --out {args.out}: not empty (each run gets a directory of its own)", file=sys.stderr)
        return None
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()


class Budget:
    """The job's clock: a deadline per step, fixed as the steps come."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    def elapsed(self):
        return time.monotonic() - self.start

    def left(self, reserve=0.0):
        return max(0.0, self.end - reserve - time.monotonic())


def fuzz_seconds_per_target(window, targets, jobs):
    """Each target's slice when `targets` run `jobs` at a time within `window` seconds (libFuzzer
    takes whole seconds; at least 1)."""
    rounds = math.ceil(targets / max(1, jobs))
    return max(1, int(window / rounds))


def run(args):
    out_dir = check_out(args)
    if out_dir is None:
        return 2
    if args.out is None:
        point_latest(paths.RESULTS, out_dir)
    options = {k: getattr(args, k) for k in ("seconds", "seeds", "ops", "jobs", "fail_on_finding", "planted_bug")}
    manifest = RunManifest(out_dir, "ci", flavour="release", options=options,
                           command=["scripts/vmfrag", "ci", *sys.argv[2:]], steps=STEPS)
    job = CiRun(args, out_dir, manifest, provenance("release", options))
    try:
        return job.run()
    except (bootstrap.BootstrapError, build.BuildError) as e:
        # Setup, not a finding about the allocator: exit 2, and the run shows as ended.
        print(f"vmfrag: error: {e}", file=sys.stderr)
        manifest.finish(2)
        return 2


class CiRun:
    def __init__(self, args, out_dir, manifest, prov):
        self.args, self.out, self.manifest, self.prov = args, out_dir, manifest, prov
        self.doc = {"format": CI_FORMAT, "version": CI_VERSION, "provenance": prov,
                    "budget": {"seconds": args.seconds, "steps": {}}, "regressions": [], "fuzz": [],
                    "workloads": [], "bench": None, "bugs": []}
        self.suites = []

    def save(self):
        """ci.json and junit.xml as they stand: rewritten (atomically) after every step."""
        write_atomically(self.out / "ci.json", json.dumps(self.doc, indent=2, sort_keys=True) + "\n")
        junit.write(self.out / "junit.xml", self.suites, name="vmfrag ci")

    def note(self, message):
        print(f"vmfrag ci: {message}", flush=True)

    def run(self):
        a = self.args
        self.note(f"budget {a.seconds} s for regressions, fuzzing, workloads and benchmarks "
                  f"(building not counted), {a.jobs} job{'s' if a.jobs > 1 else ''}; results in {self.out}")
        bootstrap.ensure_packages()
        sanitizer = build.FLAVOURS["fuzz"] in build.available_flavours()
        with self.manifest.step("build"):
            build.build(build.FLAVOURS["release"])
            if sanitizer:
                build.build(build.FLAVOURS["fuzz"])
        budget = Budget(a.seconds)
        self.doc["budget"]["started_after_build"] = True
        if sanitizer:
            self.step_regressions()
        else:
            for step in ("regressions", "fuzz"):
                self.manifest.skip(step, "no clang: the sanitizer flavour cannot be built")
        window = budget.left(reserve=BENCH_ALLOWANCE_SECONDS)
        self.step_workloads(time.monotonic() + window * WORKLOAD_SHARE)
        if sanitizer:
            self.step_fuzz(budget.left(reserve=BENCH_ALLOWANCE_SECONDS))
        self.step_bench()
        self.step_reliability()
        if self.args.kernel:
            self.step_kernel()
        else:
            self.manifest.skip("kernel", "no --kernel: findings not confirmed on a real kernel")
        return self.finish(budget)

    # ------------------------------------------------------------------------------------ steps

    def step_regressions(self):
        suite = junit.Suite("regressions")
        with self.manifest.step("regressions") as step:
            started = time.monotonic()
            records = job_units.replay_regressions(self.out, self.prov, planted=self.args.planted_bug)
            for r in records:
                failure = "; ".join(f"{b['input']}: {b['title']}" for b in r["bugs"]) or None
                suite.add(r["target"], failure=failure, output=f"{r['inputs']} inputs replayed")
                step.outputs += [b["bug"] for b in r["bugs"]]
                self.doc["bugs"] += [b["bug"] for b in r["bugs"]]
            self.doc["regressions"] = records
            self.doc["budget"]["steps"]["regressions"] = round(time.monotonic() - started, 3)
            self.suites.append(suite)
            self.save()
            step.outputs.append("ci.json")
        bugs = sum(len(r["bugs"]) for r in records)
        self.note(f"regressions: {sum(r['inputs'] for r in records)} inputs, {bugs} bug{'s' * (bugs != 1)}")

    def step_fuzz(self, window):
        a = self.args
        per_target = fuzz_seconds_per_target(window, len(FUZZ_TARGETS), a.jobs)
        self.note(f"fuzz: {len(FUZZ_TARGETS)} targets x {per_target} s")
        suite = junit.Suite("fuzz")
        started = time.monotonic()
        with self.manifest.step("fuzz") as step:
            def one(target):
                return target, job_units.run_fuzz(target, per_target, self.out / "fuzz" / target,
                                                  Path(a.corpus) / target, seed=None, log=lambda m: None)
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(a.jobs, len(FUZZ_TARGETS))) as pool:
                results = list(pool.map(one, FUZZ_TARGETS))
            for target, s in results:
                rec = job_units.fuzz_record(target, s, f"fuzz/{target}")
                self.doc["fuzz"].append(rec)
                failure = (f"{len(rec['crashes'])} crash(es): " + ", ".join(rec["crashes"][:5])) if rec["crashes"] else None
                suite.add(target, seconds=rec["wall_seconds"] or 0.0, failure=failure,
                          output=f"{rec['execs']} execs, {len(rec['findings'])} findings")
                step.outputs.append(f"fuzz/{target}")
            self.doc["budget"]["steps"]["fuzz"] = round(time.monotonic() - started, 3)
            self.suites.append(suite)
            self.save()
        for rec in self.doc["fuzz"]:
            self.note(f"fuzz: {rec['target']}: {rec['execs']} execs, {len(rec['crashes'])} crashes, "
                      f"{len(rec['findings'])} findings")

    def step_workloads(self, deadline):
        a = self.args
        workloads = job_units.list_workloads()
        units = [(w["name"], seed, a.ops or min(w["default_ops"], CI_OPS_CAP))
                 for seed in range(1, a.seeds + 1) for w in workloads]
        suite = junit.Suite("workloads")
        records = {}
        started = time.monotonic()
        self.note(f"workloads: {len(units)} runs ({len(workloads)} workloads x {a.seeds} seeds) "
                  f"within {max(0.0, deadline - time.monotonic()):.0f} s")
        with self.manifest.step("workloads") as step:
            def one(unit):
                name, seed, ops = unit
                if time.monotonic() >= deadline:
                    return unit, {"workload": name, "seed": seed, "ops_requested": ops, "status": "not-run",
                                  "error": "the budget ran out before it started", "trace": None, "replay": None,
                                  "timeline": None}
                return unit, job_units.run_workload(name, seed, ops, self.out)
            with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
                for unit, rec in pool.map(one, units):
                    records[unit] = rec
            ordered = [records[u] for u in units]
            for rec in ordered:
                name = f"{rec['workload']} seed {rec['seed']}"
                if rec["status"] == "not-run":
                    suite.add(name, skipped=rec["error"])
                elif rec["status"] == "error":
                    suite.add(name, seconds=rec.get("seconds", 0.0), error=rec["error"])
                elif rec["status"] == "divergence":
                    suite.add(name, seconds=rec["seconds"], failure=rec["error"] or "diverged from the reference model")
                else:
                    kinds = ", ".join(f"{k} {n}" for k, n in sorted(rec["failures_by_kind"].items())) or "no failure"
                    suite.add(name, seconds=rec["seconds"], output=f"{rec['ops']} ops: {kinds}")
            self.doc["workloads"] = ordered
            self.doc["budget"]["steps"]["workloads"] = round(time.monotonic() - started, 3)
            self.suites.append(suite)
            self.save()
            step.outputs.append("ci.json")
        counts = {}
        for rec in ordered:
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
        self.note("workloads: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        for rec in ordered:
            if rec["status"] in ("divergence", "error"):
                print(f"vmfrag ci: {rec['workload']} seed {rec['seed']}: {rec['status']}: {rec['error']}",
                      file=sys.stderr)

    def step_bench(self):
        suite = junit.Suite("bench")
        with self.manifest.step("bench") as step:
            rec = job_units.run_quick_bench(self.out / "bench.json", self.prov)
            self.doc["bench"] = rec
            if rec["status"] == "error":
                suite.add("quick set", seconds=rec["seconds"], error=rec["error"])
            elif rec["status"] == "divergence":
                suite.add("quick set", seconds=rec["seconds"], failure="placements differ: " + "; ".join(rec["divergences"]))
            else:
                suite.add("quick set", seconds=rec["seconds"],
                          output=f"{rec['benchmarks']} benchmark entries; perf counters unsupported: "
                                 f"{', '.join(rec['unsupported']) or 'none'}")
            if rec["status"] != "error":
                step.outputs += [rec["json"], rec["ratios"]]
            self.doc["budget"]["steps"]["bench"] = rec["seconds"]
            self.suites.append(suite)
            self.save()
        self.note(f"bench: {rec['status']} ({rec['seconds']:.0f} s)")

    def step_reliability(self):
        """results/reliability.json, copied in when `scripts/vmfrag test` wrote it for this very commit
        (clean tree); otherwise the step is skipped and says why."""
        from .testing import RELIABILITY_JSON
        why = None
        try:
            doc = json.loads(RELIABILITY_JSON.read_text())
            prov = doc.get("provenance") or {}
            if prov.get("commit") != self.prov["commit"] or prov.get("dirty") or self.prov["dirty"]:
                why = (f"{RELIABILITY_JSON.name} is from commit {str(prov.get('commit'))[:12]}"
                       f"{' (dirty)' if prov.get('dirty') else ''}, not this one")
        except FileNotFoundError:
            why = "no results/reliability.json: `scripts/vmfrag test` writes it"
        except (OSError, ValueError) as e:
            why = f"{RELIABILITY_JSON}: {e}"
        if why:
            self.manifest.skip("reliability", why)
            self.note(f"reliability: skipped: {why}")
            return
        with self.manifest.step("reliability") as step:
            write_atomically(self.out / "reliability.json", json.dumps(doc, indent=2) + "\n")
            step.outputs.append("reliability.json")
        self.note("reliability: " + ", ".join(f"{f['name']} {f['passed']}/{f['tried']}" for f in doc["figures"]))

    def step_kernel(self):
        suite = junit.Suite("kernel")
        with self.manifest.step("kernel") as step:
            started = time.monotonic()
            counts = job_units.confirm_findings_under(self.out, self.args.kernel, log=lambda m: None)
            seconds = round(time.monotonic() - started, 3)
            self.doc["kernel"] = {"series": list(self.args.kernel), **counts, "seconds": seconds}
            # A difference is a result (the report shows it); a confirmation that could not run is an error.
            suite.add("confirm findings on Linux " + ", ".join(self.args.kernel), seconds=seconds,
                      error=f"{counts['error']} confirmation(s) failed to run" if counts["error"] else None,
                      output=", ".join(f"{n} {k}" for k, n in counts.items()))
            self.suites.append(suite)
            self.save()
            step.outputs.append("ci.json")
        self.note("kernel: " + ", ".join(f"{n} {k}" for k, n in counts.items()))

    # ----------------------------------------------------------------------------------- ending

    def bugs(self):
        """Every reason this run counts as failed, one line each."""
        out = [f"bug: {b}" for b in self.doc["bugs"]]
        for rec in self.doc["fuzz"]:
            out += [f"fuzz {rec['target']}: crash {c}" for c in rec["crashes"]]
        for rec in self.doc["workloads"]:
            if rec["status"] in ("divergence", "error"):
                out.append(f"workload {rec['workload']} seed {rec['seed']}: {rec['status']}")
        b = self.doc["bench"]
        if b and b["status"] in ("divergence", "error"):
            out.append(f"bench: {b['status']}")
        return out

    def findings_at_or_below(self, severity):
        hits = []
        for path in sorted(self.out.glob("fuzz/*/findings/*.json")):
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if doc.get("format") == schemas.FINDING and doc.get("severity") is not None and doc["severity"] <= severity:
                hits.append(f"finding {path.relative_to(self.out)}: severity {doc['severity']:.4f} <= {severity}")
        return hits

    def finish(self, budget):
        bad = self.bugs()
        if self.args.fail_on_finding is not None:
            bad += self.findings_at_or_below(self.args.fail_on_finding)
        code = 1 if bad else 0
        self.doc["exit_code"] = code
        self.doc["budget"]["elapsed"] = round(budget.elapsed(), 3)
        self.save()
        from . import report
        self.manifest.finish(code)  # before the report, which shows the run as ended
        _, html = report.make_report(self.out, history_path=None if self.args.no_history else Path(self.args.history))
        for line in bad:
            print(f"vmfrag ci: {line}", file=sys.stderr)
        self.note(f"{'ok' if code == 0 else 'FAILED'} in {budget.elapsed():.0f} s of a {self.args.seconds} s budget; "
                  f"{len(bad)} reason{'s' * (len(bad) != 1)} to fail")
        self.note(f"report: {html}")
        return code
