"""The long stress job, `scripts/vmfrag nightly`: what a scheduled pipeline runs, on one machine or
split across many.

The plan is a list of units, made deterministically from the options that shape it (the budget, the
shard count, --seeds, the fuzz slice and hunt trial lengths; never --jobs or the shard index), so
that every shard of a split computes the same plan:

  round r = every `gen` workload with seed r (each workload's own op count, --differential,
            check() every 1000 ops)
          + every fuzz target for one slice with libFuzzer seed r (shared working corpus)
          + one hunt-eval trial of each arm (fuzz_frag_hunt with and without its state features,
            blind random traces) with seed r, the same CPU time each
          + the concurrency stress (2-16 threads on one memfd Vmalloc, TSan flavour) with seed r and
            --stress-ops ops per thread count and round

Rounds are added while the plan's estimated cost fits the budget times the shard count times
CAPACITY_WORKERS (2: a machine of this project's kind); at least one round. `--shard I/N` runs the
units whose plan index is I-1 modulo N, in plan order (early rounds first); the shards' unions is
the whole plan. A unit is started only while the budget lasts; the rest are recorded `not-run` and
are what `--resume` continues with.

Then, unless --no-kernel, every finding the run wrote is replayed on the real kernels of --kernel
(default 6.1) under QEMU (`confirm`): the report marks each "confirmed on Linux X" or shows the
difference. This step is resumable too (a confirmed finding is not replayed again).

Results (a new results/nightly-<UTC time>/ or --out): plan.json, run.json, units/<unit>.json (one
record per finished unit, written atomically when it ends), units/<unit>/ (its outputs: traces of
failing workloads, a fuzz slice's findings, crashes and stats, a hunt trial's log), hunt-eval.json
(the statistics over this directory's finished trials), then index.html. Killing the job at any
moment loses at most the units in flight: their directories are kept as units/<unit>.killed-N/
(with whatever findings they had written) and `--resume` runs them again; finished units are never
run twice. `scripts/vmfrag report OUT --merge OTHER...` joins shards into one report.

Exit codes: 0 no bug; 1 a bug (crash, sanitizer report, divergence, broken invariant, a tool that
failed); 2 usage or setup error; 130 interrupted.
"""
import concurrent.futures
import json
import math
import os
import re
import sys
import threading
import time
from pathlib import Path

from . import bootstrap, build, fuzz_job, hunt_eval, job_units, paths
from .results import schemas
from .results.provenance import provenance
from .results.writing import RunManifest, new_run_directory, now_iso, point_latest, write_atomically

PLAN_FORMAT, UNIT_FORMAT = schemas.NIGHTLY_PLAN, schemas.NIGHTLY_UNIT
CAPACITY_WORKERS = 2
FUZZ_TARGETS = tuple(sorted(fuzz_job.TARGETS))  # every target scripts/vmfrag fuzz offers
# Replay with the reference model beside it, measured here: 2.3 us per op (random_size_alloc_test,
# 2M ops, 4.7 s); the estimate only sizes the plan, nothing is cut short by it.
WORKLOAD_SECONDS_PER_OP = 2.5e-6
HUNT_THRESHOLD = 0.6
# Measured in the tsan flavour: 19,200 mixed ops (2,400 x 2 rounds x 4 thread counts) in 2.7 s.
STRESS_SECONDS_PER_OP = 2.7 / 19200
DEFAULT_STRESS_OPS = 50_000
PLAIN_PROGRESS_SECONDS = 60
SHARD = re.compile(r"^(\d+)/(\d+)$")


def shard_arg(text):
    import argparse
    m = SHARD.match(text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 10000:
        raise argparse.ArgumentTypeError(f"'{text}' is not I/N with 1 <= I <= N <= 10000")
    return int(m.group(1)), int(m.group(2))


def add_arguments(p, bounded_int, bounded_float):
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--hours", type=bounded_float(0.001, 168.0), metavar="H",
                        help="time budget in hours, 0.001 to 168 (default 6)")
    budget.add_argument("--seconds", type=bounded_int(1, 168 * 3600), metavar="S",
                        help="time budget in seconds, 1 to 604800")
    p.add_argument("--out", metavar="DIR", help="results directory (default: a new results/nightly-<UTC time>/); "
                                                "with --resume, the run to continue (default: results/latest)")
    p.add_argument("--jobs", type=bounded_int(1, 256), default=os.cpu_count() or 1, metavar="J",
                   help="units run in parallel, 1 to 256 (default: the core count)")
    p.add_argument("--shard", type=shard_arg, default=(1, 1), metavar="I/N",
                   help="run the I-th of N deterministic parts of the plan (default 1/1)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed or unfinished run: finished units are skipped")
    kernel = p.add_mutually_exclusive_group()
    kernel.add_argument("--kernel", type=job_units.kernel_series_arg, default=("6.1",), metavar="SERIES",
                        help="confirm every finding on these real kernels, e.g. 6.1,6.12 (default 6.1)")
    kernel.add_argument("--no-kernel", action="store_true", help="do not confirm findings on a real kernel")
    p.add_argument("--seeds", type=bounded_int(1, 1000), default=None, metavar="N",
                   help="rounds at most, 1 to 1000 (default: as many as the budget fits)")
    p.add_argument("--ops", type=bounded_int(1, 10**9), default=None, metavar="N",
                   help="ops per workload unit at most, 1 to 1000000000 (default: each workload's own)")
    p.add_argument("--stress-ops", type=bounded_int(0, 10**9), default=DEFAULT_STRESS_OPS, metavar="N",
                   help=f"ops per thread count and round of each concurrency stress unit, 0 (none) to "
                        f"1000000000 (default {DEFAULT_STRESS_OPS:,})")
    p.add_argument("--fuzz-slice", type=bounded_int(1, 86400), default=None, metavar="S",
                   help="seconds per fuzz unit (default: budget/10, from 5 to 600)")
    p.add_argument("--hunt-trial", type=bounded_int(1, 86400), default=None, metavar="S",
                   help="CPU seconds per hunt-eval trial (default: budget/10, from 5 to 600)")
    return p


# ------------------------------------------------------------------------------------------ plan

def budget_seconds(args):
    if args.seconds is not None:
        return float(args.seconds)
    return (args.hours if args.hours is not None else 6.0) * 3600.0


def default_slice(budget):
    return int(min(600, max(5, budget / 10)))


def stress_cost(ops):
    return 2 * 4 * ops * STRESS_SECONDS_PER_OP  # 2 rounds x 4 thread counts


def ops_of(workload, cap):
    return min(workload["default_ops"], cap) if cap else workload["default_ops"]


def make_plan(budget, shard_count, workloads, seeds=None, fuzz_slice=None, hunt_trial=None, ops=None,
              stress_ops=DEFAULT_STRESS_OPS):
    """The plan document: every unit with its parameters and estimated cost, in run order."""
    fuzz_slice = fuzz_slice or default_slice(budget)
    hunt_trial = hunt_trial or default_slice(budget)
    capacity = budget * shard_count * CAPACITY_WORKERS
    round_cost = (sum(ops_of(w, ops) * WORKLOAD_SECONDS_PER_OP for w in workloads)
                  + len(FUZZ_TARGETS) * fuzz_slice + len(hunt_eval.ARMS) * hunt_trial + stress_cost(stress_ops))
    rounds = max(1, math.ceil(capacity / round_cost)) if round_cost else 1
    if seeds is not None:
        rounds = min(rounds, seeds)
    units = []
    for r in range(1, rounds + 1):
        work = [{"id": f"workload.{w['name']}.seed-{r}", "kind": "workload", "workload": w["name"], "seed": r,
                 "ops": ops_of(w, ops), "estimate": round(ops_of(w, ops) * WORKLOAD_SECONDS_PER_OP, 3)}
                for w in workloads]
        fuzz = [{"id": f"fuzz.{t}.slice-{r}", "kind": "fuzz", "target": t, "seed": r, "seconds": fuzz_slice,
                 "estimate": fuzz_slice} for t in FUZZ_TARGETS]
        hunt = [{"id": f"hunt.{arm}.trial-{r}", "kind": "hunt", "arm": arm, "trial": r - 1, "seed": r,
                 "cpu_seconds": hunt_trial, "estimate": hunt_trial} for arm in hunt_eval.ARMS]
        stress = [{"id": f"stress.concurrency.round-{r}", "kind": "stress", "seed": r, "ops": stress_ops,
                   "estimate": round(stress_cost(stress_ops), 3)}] if stress_ops else []
        # Interleaved, so that a budget cut short (or a shard) still gets some of every kind.
        for i in range(max(len(work), len(fuzz), len(hunt))):
            units += [kind[i] for kind in (work, fuzz, hunt, stress) if i < len(kind)]
    return {"format": PLAN_FORMAT, "version": 1, "budget_seconds": budget, "shard_count": shard_count,
            "rounds": rounds, "fuzz_slice": fuzz_slice, "hunt_trial": hunt_trial,
            "ops_cap": ops, "stress_ops": stress_ops, "capacity_workers": CAPACITY_WORKERS, "units": units}


def shard_units(plan, index, count):
    """The units of shard `index` (1-based) of `count`: plan positions index-1, index-1+count, ..."""
    return [u for i, u in enumerate(plan["units"]) if i % count == index - 1]


# ------------------------------------------------------------------------------------ running

def unit_record_path(out, unit_id):
    return out / "units" / f"{unit_id}.json"


def finished_units(out):
    done = {}
    for p in (out / "units").glob("*.json"):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # never half-written (atomic); a foreign file is the loader's business
        if doc.get("format") == UNIT_FORMAT:
            done[doc["unit"]["id"]] = doc
    return done


def set_aside_killed(out, unit_id):
    """A unit directory without its record is what a killed attempt left: kept (its findings with
    it) as units/<id>.killed-N/, and the unit runs again in a clean directory."""
    d = out / "units" / unit_id
    if not d.exists():
        return None
    n = 1
    while (out / "units" / f"{unit_id}.killed-{n}").exists():
        n += 1
    target = out / "units" / f"{unit_id}.killed-{n}"
    os.replace(d, target)
    return target.name


def run_unit(unit, out):
    """Runs one unit in units/<id>/; returns its record's `result`."""
    d = out / "units" / unit["id"]
    d.mkdir(parents=True)
    if unit["kind"] == "workload":
        rec = job_units.run_workload(unit["workload"], unit["seed"], unit["ops"], d)
        for key in ("trace", "replay", "timeline"):  # relative to the results directory, as in ci.json
            if rec.get(key):
                rec[key] = f"units/{unit['id']}/{rec[key]}"
        return rec
    if unit["kind"] == "fuzz":
        corpus = out / "corpus" / unit["target"]
        s = job_units.run_fuzz(unit["target"], unit["seconds"], d, corpus, seed=unit["seed"], log=lambda m: None)
        return job_units.fuzz_record(unit["target"], s, f"units/{unit['id']}")
    if unit["kind"] == "hunt":
        rec = hunt_eval.run_trial(unit["arm"], unit["trial"], unit["seed"], unit["cpu_seconds"], d / "trial",
                                  HUNT_THRESHOLD)
        return rec
    if unit["kind"] == "stress":
        return job_units.run_concurrency_stress(unit["seed"], unit["ops"], d)
    raise ValueError(f"unknown unit kind {unit['kind']!r}")


def is_bug(unit, result):
    if unit["kind"] == "workload":
        return result["status"] in ("divergence", "error")
    if unit["kind"] == "fuzz":
        return bool(result["crashes"])
    if unit["kind"] == "stress":
        return result["status"] != "ok"
    return False


class Progress:
    """A rich progress bar on a terminal; otherwise a line per finished unit and a status line every
    PLAIN_PROGRESS_SECONDS."""

    def __init__(self, total, already):
        self.total, self.done, self.bugs = total, already, 0
        self.tty = sys.stdout.isatty()
        self.lock = threading.Lock()
        self.last_line = time.monotonic()
        self.bar = None
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeElapsedColumn
            self.bar = RichProgress(TextColumn("nightly"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                    TextColumn("{task.description}"))
            self.task = self.bar.add_task("", total=total, completed=already)
            self.bar.start()

    def finished(self, unit, result, bug):
        with self.lock:
            self.done += 1
            self.bugs += bug
            line = f"vmfrag nightly: {self.done}/{self.total} {unit['id']}: {summary(unit, result)}"
            if self.bar:
                self.bar.update(self.task, completed=self.done, description=f"bugs {self.bugs}")
                self.bar.console.print(line, highlight=False)
            else:
                print(line, flush=True)
                self.last_line = time.monotonic()

    def tick(self, running):
        if self.bar or time.monotonic() - self.last_line < PLAIN_PROGRESS_SECONDS:
            return
        with self.lock:
            print(f"vmfrag nightly: {self.done}/{self.total} units finished, {self.bugs} bugs; running: "
                  + ", ".join(sorted(running)), flush=True)
            self.last_line = time.monotonic()

    def stop(self):
        if self.bar:
            self.bar.stop()


def summary(unit, r):
    if unit["kind"] == "workload":
        kinds = ", ".join(f"{k} {n}" for k, n in sorted((r.get("failures_by_kind") or {}).items())) or "no failure"
        return f"{r['status']} ({kinds})"
    if unit["kind"] == "fuzz":
        return f"{r['execs']} execs, {len(r['crashes'])} crashes, {len(r['findings'])} findings"
    if unit["kind"] == "stress":
        ops = sum(x["threads"] * x["ops_per_thread"] * x["rounds"] for x in r["runs"])
        return f"{r['status']}: {ops:,} ops over {len(r['runs'])} thread counts" + (", DATA RACE" if r["data_race"] else "")
    best = r.get("best_severity")
    return f"best severity {best:.4f}" if best is not None else "no failure reached"


# ------------------------------------------------------------------------------------------- job

def resolve_out(args):
    """(run directory, resumed?) or raises UsageError."""
    if args.resume:
        out = Path(args.out) if args.out else paths.RESULTS / "latest"
        plan = out / "plan.json"
        if not plan.is_file():
            raise UsageError(f"--resume: {out} is not a nightly run (no plan.json)")
        return out.resolve(), True
    if args.out is None:
        out = new_run_directory(paths.RESULTS, "nightly")
        point_latest(paths.RESULTS, out)
        return out, False
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {args.out}: not an empty directory (use --resume to continue a run)")
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve(), False


class UsageError(ValueError):
    pass


def run(args):
    try:
        out, resumed = resolve_out(args)
    except UsageError as e:
        print(f"vmfrag: error: {e}", file=sys.stderr)
        return 2
    try:
        bootstrap.ensure_packages()
        sanitizer = build.FLAVOURS["fuzz"] in build.available_flavours()
        build.build(build.FLAVOURS["release"])
        if sanitizer:
            build.build(build.FLAVOURS["fuzz"])
    except (bootstrap.BootstrapError, build.BuildError) as e:
        print(f"vmfrag: error: {e}", file=sys.stderr)  # setup, not a result: exit 2
        return 2
    if resumed:
        # A writer killed mid-file leaves its temporary file (write_atomically: .<name>.<random>.tmp);
        # the file it was writing is either whole or absent, so the temporary is only litter.
        for tmp in out.rglob(".*.tmp"):
            tmp.unlink()
        plan = json.loads((out / "plan.json").read_text())
        shard = (plan["shard_index"], plan["shard_count"])
        budget = budget_seconds(args) if (args.hours or args.seconds) else plan["budget_seconds"]
    else:
        budget = budget_seconds(args)
        shard = args.shard
        plan = make_plan(budget, shard[1], job_units.list_workloads(), args.seeds, args.fuzz_slice, args.hunt_trial,
                         args.ops, args.stress_ops)
        plan["shard_index"] = shard[0]
        write_atomically(out / "plan.json", json.dumps(plan, indent=2) + "\n")
    mine = shard_units(plan, *shard)
    if not sanitizer:
        mine = [u for u in mine if u["kind"] == "workload"]
    elif any(u["kind"] == "stress" for u in mine):
        try:
            build.build(build.FLAVOURS["tsan"])
        except build.BuildError as e:
            print(f"vmfrag: error: {e}", file=sys.stderr)
            return 2
    options = {"budget_seconds": budget, "jobs": args.jobs, "resumed": resumed, "rounds": plan["rounds"]}
    manifest = RunManifest(out, "nightly", flavour="release", options=options, shard=shard if shard[1] > 1 else None,
                           command=["scripts/vmfrag", "nightly", *sys.argv[2:]], steps=("units", "hunt-eval", "kernel"))
    done = finished_units(out)
    todo = [u for u in mine if u["id"] not in done]
    print(f"vmfrag nightly: budget {budget:.0f} s, {args.jobs} job{'s' * (args.jobs > 1)}, shard {shard[0]}/{shard[1]}: "
          f"{len(mine)} units of a {len(plan['units'])}-unit plan ({plan['rounds']} rounds), {len(mine) - len(todo)} "
          f"already finished; results in {out}", flush=True)
    print(f"vmfrag nightly: to continue after an interruption: scripts/vmfrag nightly --resume --out {out}", flush=True)
    deadline = time.monotonic() + budget
    progress = Progress(len(mine), len(mine) - len(todo))
    running = set()
    lock = threading.Lock()
    bugs = [d["unit"]["id"] for d in done.values() if d.get("bug")]

    def one(unit):
        if time.monotonic() >= deadline:
            return unit, None
        with lock:
            running.add(unit["id"])
        killed = set_aside_killed(out, unit["id"])
        started = now_iso()
        t0 = time.monotonic()
        try:
            result = run_unit(unit, out)
        finally:
            with lock:
                running.discard(unit["id"])
        bug = is_bug(unit, result)
        record = {"format": UNIT_FORMAT, "version": 1, "unit": unit, "started": started, "finished": now_iso(),
                  "seconds": round(time.monotonic() - t0, 3), "bug": bug, "previous_attempt": killed,
                  "result": result}
        write_atomically(unit_record_path(out, unit["id"]), json.dumps(record, indent=2) + "\n")
        progress.finished(unit, result, bug)
        return unit, record

    not_run = []
    try:
        with manifest.step("units") as step:
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
                futures = [pool.submit(one, u) for u in todo]
                pending = set(futures)
                while pending:
                    finished, pending = concurrent.futures.wait(pending, timeout=5)
                    progress.tick(running)
                for f in futures:
                    unit, record = f.result()
                    if record is None:
                        not_run.append(unit["id"])
                    elif record["bug"]:
                        bugs.append(unit["id"])
            step.outputs.append("units")
    finally:
        progress.stop()
    with manifest.step("hunt-eval") as step:
        if write_hunt_eval(out, plan, provenance("fuzz", options)):
            step.outputs.append("hunt-eval.json")
    kernel = None
    if args.no_kernel:
        manifest.skip("kernel", "--no-kernel: findings not confirmed on a real kernel")
    else:
        with manifest.step("kernel"):
            kernel = {"series": list(args.kernel), **job_units.confirm_findings_under(out, args.kernel,
                                                                                       log=lambda m: None)}
        print("vmfrag nightly: kernel: " + ", ".join(f"{n} {k}" for k, n in kernel.items() if k != "series"), flush=True)
    status = {"format": schemas.NIGHTLY_STATUS, "version": 1, "plan_units": len(plan["units"]),
              "shard_units": len(mine), "finished": len(finished_units(out)), "not_run": not_run, "bugs": sorted(bugs),
              "kernel": kernel}
    write_atomically(out / "nightly.json", json.dumps(status, indent=2) + "\n")
    code = 1 if bugs else 0
    manifest.finish(code)
    from . import history, report
    _, html = report.make_report(out, history_path=history.DEFAULT_PATH if out.parent == paths.RESULTS.resolve()
                                 else out / "history.sqlite")
    print(f"vmfrag nightly: {'ok' if code == 0 else 'FAILED'}: {status['finished']} of {len(mine)} units finished, "
          f"{len(not_run)} not run (budget), {len(bugs)} with a bug" + (f": {', '.join(sorted(bugs))}" if bugs else ""))
    if not_run:
        print(f"vmfrag nightly: to run the rest: scripts/vmfrag nightly --resume --out {out}")
    print(f"vmfrag nightly: report: {html}")
    return code


def write_hunt_eval(out, plan, prov):
    """hunt-eval.json over the finished trials in this directory (the statistics of hunt_eval)."""
    trials = [d["result"] for d in finished_units(out).values() if d["unit"]["kind"] == "hunt"]
    if not trials:
        return False
    trials.sort(key=lambda r: (hunt_eval.ARMS.index(r["arm"]), r["trial"]))
    doc = hunt_eval.document(trials, plan["rounds"], plan["hunt_trial"], HUNT_THRESHOLD, seed_base=1,
                             seed_corpus=False, provenance=prov)
    write_atomically(out / "hunt-eval.json", json.dumps(doc, indent=2) + "\n")
    return True
