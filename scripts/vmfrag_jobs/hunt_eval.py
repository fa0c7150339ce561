"""`vmfrag hunt-eval`: does steering by fragmentation state find worse fragmentation than coverage
alone or blind random traces? Measured as fuzzing evaluations should be (Klees et al. 2018).

Config: fuzz_frag_hunt's (region 1 MiB, guard 1, lazy 0, page alignment, 1-15 pages; m = 16,
first-fit floor ln 2 / H_16 = 0.2050). Three arms, each trial with the same CPU time and a recorded
seed (trial i of every arm uses seed seed_base + i):

  features     fuzz_frag_hunt with its state features (extra counters), from an empty corpus
  no_features  the same binary and seeds with VMFRAG_HUNT_FEATURES=0 (code coverage only)
  blind        vmfrag-blind-hunt: seeded random traces of 1,500 ops, 45 % frees

The fuzzing arms start from an empty corpus by default, like the blind arm: corpus/frag_hunt holds
clamped workloads that already reach severity 0.578, which would measure the seeds, not the search
(--seed-corpus uses them anyway).

All three are the fuzz flavour's binaries (clang, ASan+UBSan, coverage instrumentation), so a CPU
second buys the same instrumented work. The budget is CPU time, enforced with RLIMIT_CPU (the
process is killed when it is spent; a wall-clock limit backs it up), so arms stay comparable on a
shared machine. Progress comes from the `vmfrag-hunt: best ...` lines the binaries print at each
new lowest severity, with the CPU seconds and ops executed so far.

Per trial: best severity, CPU time and ops to reach the threshold (censored when never reached),
corpus size, and for the features arm the share of kept inputs owed to the state features: the
corpus is merged again with the features off (libFuzzer -merge=1); inputs the merge drops were kept
only for a state feature. Per arm: success rate with a Wilson 95 % interval. Between arms, on best
severity: two-sided Mann-Whitney U p-value and Vargha-Delaney A12 = P(X < Y) + P(X = Y)/2, the
probability that the first arm's best is lower (better) than the second's.

Until the CLI is wired (`scripts/vmfrag hunt-eval`): `PYTHONPATH=scripts python3 -m vmfrag_jobs.hunt_eval`.
"""
import argparse
import concurrent.futures
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import bootstrap, build, fuzz_job, fuzz_records, paths
from .arguments import bounded_float, bounded_int
from .results import provenance as provenance_module
from .results.writing import RunManifest, write_result

ARMS = ("features", "no_features", "blind")
FLOOR_M16 = math.log(2) / sum(1 / i for i in range(1, 17))
STATUS_LINE = re.compile(r"^#(\d+)\s")
BLIND_LINE = re.compile(r"vmfrag-blind-hunt: traces (\d+) ops (\d+) best \S+ cpu (\S+)")
MIN_TRIALS = 10


def fuzz_build_dir():
    return paths.build_dir("fuzz")


def trajectory(text):
    """The `vmfrag-hunt: best ...` lines as dicts, in order."""
    return fuzz_records.parse_hunt_progress(text)


def run_trial(arm, trial, seed, cpu_seconds, workdir, threshold, max_len=1536, seed_corpus=False):
    """One trial; returns its record. workdir is this trial's scratch directory."""
    bdir = fuzz_build_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, VMFRAG_HUNT_PROGRESS="1", VMFRAG_HUNT_FEATURES="0" if arm == "no_features" else "1",
               ASAN_OPTIONS="detect_leaks=0")
    corpus = workdir / "corpus"
    if arm == "blind":
        # It stops itself a little before the limit so that its summary (every trace counted) is printed.
        cmd = [str(bdir / "harness" / "vmfrag-blind-hunt"), "--seed", str(seed), "--cpu-seconds",
               str(max(0.5, cpu_seconds - 0.3))]
    else:
        corpus.mkdir(exist_ok=True)
        cmd = [str(bdir / "fuzz" / "fuzz_frag_hunt"), f"-seed={seed}", f"-max_len={max_len}",
               f"-max_total_time={cpu_seconds * 20 + 10}", "-print_final_stats=1", "-reload=0",
               f"-dict={paths.REPO / 'corpus' / 'frag_hunt.dict'}", f"-artifact_prefix={workdir}/", str(corpus)]
        if seed_corpus:
            cmd.append(str(paths.REPO / "corpus" / "frag_hunt"))
    # prlimit(1) execs the command with RLIMIT_CPU set (no preexec_fn: trials run from threads).
    limited = ["prlimit", f"--cpu={cpu_seconds}:{cpu_seconds + 2}", *fuzz_job.reproducible(cmd)]
    r = subprocess.run(limited, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                       timeout=cpu_seconds * 40 + 60)
    (workdir / "log.txt").write_text(r.stdout)
    traj = trajectory(r.stdout)
    hit = next((p for p in traj if p["best"] <= threshold), None)
    execs = traj[-1]["execs"] if traj else 0
    blind_cpu = None
    for line in r.stdout.splitlines():  # libFuzzer's status lines (and the blind summary) count every run
        m = STATUS_LINE.match(line)
        if m:
            execs = max(execs, int(m.group(1)))
        m = BLIND_LINE.search(line)
        if m:
            execs, blind_cpu = int(m.group(1)), float(m.group(3))
    rec = {
        "arm": arm, "trial": trial, "seed": seed, "cpu_budget": cpu_seconds,
        "exit": r.returncode, "killed_by_cpu_limit": r.returncode == -24,
        "best_severity": traj[-1]["best"] if traj else None,
        "best_kind": traj[-1]["kind"] if traj else None,
        "reached": hit is not None,
        "cpu_to_threshold": hit["cpu"] if hit else None,
        "ops_to_threshold": hit["ops"] if hit else None,
        "censored": hit is None,
        "execs": execs,
        "trajectory": traj,
        "command": cmd,
    }
    if arm != "blind":
        rec["corpus_size"] = sum(1 for p in corpus.iterdir() if p.is_file())
    if arm == "features" and rec["corpus_size"]:
        merged = workdir / "merged_without_features"
        merged.mkdir(exist_ok=True)
        m = subprocess.run([str(bdir / "fuzz" / "fuzz_frag_hunt"), "-merge=1", f"-max_len={max_len}", str(merged),
                            str(corpus)], env=dict(env, VMFRAG_HUNT_FEATURES="0", VMFRAG_HUNT_PROGRESS="0"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        kept = sum(1 for p in merged.iterdir() if p.is_file())
        rec["kept_without_features"] = kept if m.returncode == 0 else None
        rec["share_owed_to_features"] = (1 - kept / rec["corpus_size"]) if m.returncode == 0 else None
    # The CPU the trial itself used is its last progress line's or, killed at the limit, the budget.
    rec["cpu_used"] = cpu_seconds if rec["killed_by_cpu_limit"] else (blind_cpu or (traj[-1]["cpu"] if traj else None))
    return rec


def wilson(successes, n, z=1.959964):
    """95 % Wilson score interval for a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def a12(x, y):
    """Vargha-Delaney A12: probability that a value from x is lower than one from y (ties half)."""
    if not x or not y:
        return None
    wins = sum((a < b) + 0.5 * (a == b) for a in x for b in y)
    return wins / (len(x) * len(y))


def median(v):
    v = sorted(v)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def statistics(trials, threshold):
    from scipy.stats import mannwhitneyu  # python3-scipy (bootstrap.PACKAGES)
    arms = {}
    for arm in ARMS:
        rs = [t for t in trials if t["arm"] == arm]
        if not rs:
            continue
        bests = [t["best_severity"] for t in rs if t["best_severity"] is not None]
        ok = sum(t["reached"] for t in rs)
        arms[arm] = {
            "trials": len(rs), "best_severities": bests, "best": min(bests) if bests else None,
            "median_best": median(bests), "successes": ok, "success_rate": ok / len(rs),
            "success_ci95": wilson(ok, len(rs)),
            "median_cpu_to_threshold": median([t["cpu_to_threshold"] for t in rs if t["reached"]]),
            "median_ops_to_threshold": median([t["ops_to_threshold"] for t in rs if t["reached"]]),
            "censored": sum(t["censored"] for t in rs),
            "median_execs": median([t["execs"] for t in rs]),
            "median_corpus_size": median([t["corpus_size"] for t in rs if "corpus_size" in t]),
            "median_share_owed_to_features": median([t["share_owed_to_features"] for t in rs
                                                     if t.get("share_owed_to_features") is not None]),
            "underpowered": len(rs) < MIN_TRIALS,
        }
    comparisons = []
    for a, b in (("features", "no_features"), ("features", "blind"), ("no_features", "blind")):
        if a in arms and b in arms and arms[a]["best_severities"] and arms[b]["best_severities"]:
            x, y = arms[a]["best_severities"], arms[b]["best_severities"]
            p = mannwhitneyu(x, y, alternative="two-sided").pvalue if len(set(x + y)) > 1 else 1.0
            comparisons.append({"a": a, "b": b, "mann_whitney_p": float(p), "a12": a12(x, y)})
    return {"threshold": threshold, "floor": FLOOR_M16, "arms": arms, "comparisons": comparisons}


def fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def table(result):
    s = result["statistics"]
    lines = [f"hunt-eval: {result['trials_per_arm']} trials/arm x {result['cpu_seconds']} CPU s, threshold "
             f"{s['threshold']}, first-fit floor ln2/H_16 = {s['floor']:.4f}",
             f"{'arm':<12} {'best':>6} {'median':>7} {'reached':>8} {'95% CI':>13} {'cpu→T':>7} {'ops→T':>9} "
             f"{'execs':>9} {'corpus':>6} {'owed':>5}"]
    for arm, a in s["arms"].items():
        lo, hi = a["success_ci95"]
        lines.append(f"{arm:<12} {fmt(a['best']):>6} {fmt(a['median_best']):>7} {a['successes']:>3}/{a['trials']:<4} "
                     f"{f'[{lo:.2f},{hi:.2f}]':>13} {fmt(a['median_cpu_to_threshold'], '.1f'):>7} "
                     f"{fmt(a['median_ops_to_threshold'], '.0f'):>9} {fmt(a['median_execs'], '.0f'):>9} "
                     f"{fmt(a['median_corpus_size'], '.0f'):>6} {fmt(a['median_share_owed_to_features'], '.2f'):>5}")
    for c in s["comparisons"]:
        lines.append(f"{c['a']} vs {c['b']}: Mann-Whitney p = {c['mann_whitney_p']:.3g}, A12 = {c['a12']:.2f}")
    best = min((a["best"] for a in s["arms"].values() if a["best"] is not None), default=None)
    if best is not None:
        lines.append(f"best severity overall {best:.4f}, {best - s['floor']:+.4f} from the floor {s['floor']:.4f}")
    if any(a["underpowered"] for a in s["arms"].values()):
        lines.append(f"note: fewer than {MIN_TRIALS} trials per arm: underpowered, not an evaluation")
    lines.append("(cpu→T, ops→T: medians over the trials that reached the threshold; the rest are censored)")
    return "\n".join(lines)


ARM_DESCRIPTIONS = {
    "features": "fuzz_frag_hunt with its state features (extra counters), from an empty corpus",
    "no_features": "the same binary and seeds with VMFRAG_HUNT_FEATURES=0 (code coverage only)",
    "blind": "vmfrag-blind-hunt: seeded random traces of 1,500 ops, 45 % frees",
}


def document(records, trials, cpu_seconds, threshold, seed_base, seed_corpus, provenance):
    """The vmfrag-hunt-eval v1 document (reports/README.md): config, threshold, the CPU seconds per
    trial and, per arm, its trials in the results layer's fields; the full trial records and this
    module's statistics ride along (`trials`, `statistics`)."""
    arms = []
    for arm in ARMS:
        rs = [t for t in records if t["arm"] == arm]
        if not rs:
            continue
        arms.append({"name": arm, "description": ARM_DESCRIPTIONS[arm], "trials": [
            {"seed": t["seed"], "best_severity": t["best_severity"], "seconds_to_threshold": t["cpu_to_threshold"],
             "ops_to_threshold": t["ops_to_threshold"], "corpus_size": t.get("corpus_size"),
             "kept_by_state_features": (t["corpus_size"] - t["kept_without_features"]
                                        if t.get("kept_without_features") is not None else None),
             "execs": t["execs"]} for t in rs]})
    return {"format": "vmfrag-hunt-eval", "version": 1, "threshold": threshold, "seconds_per_trial": cpu_seconds,
            "seconds_are": "CPU seconds (RLIMIT_CPU)", "trials_per_arm": trials, "cpu_seconds": cpu_seconds,
            "seed_base": seed_base, "seed_corpus": seed_corpus,
            "config": {"floor": FLOOR_M16, "region_bytes": 1 << 20, "guard_pages": 1, "lazy_pages": 0,
                       "max_request_pages": 15, "align": 4096, "m": 16,
                       "region": "1M", "guard": 1, "lazy": 0, "pages": [1, 15]},
            "arms": arms, "trials": records, "statistics": statistics(records, threshold), "provenance": provenance}


def run(trials=10, cpu_seconds=600, out=None, threshold=0.6, seed_base=1, parallel=1, arms=ARMS,
        do_build=True, log=print, seed_corpus=False):
    if do_build:
        build.build(build.FLAVOURS["fuzz"], log=log)
    out = Path(out) if out else paths.RESULTS / "hunt-eval"
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="hunt-eval-", dir=out))
    jobs = [(arm, i, seed_base + i) for i in range(trials) for arm in arms]
    records = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {pool.submit(run_trial, arm, i, seed, cpu_seconds, scratch / f"{arm}-{i}", threshold,
                               seed_corpus=seed_corpus): (arm, i)
                   for arm, i, seed in jobs}
        for f in concurrent.futures.as_completed(futures):
            rec = f.result()
            records.append(rec)
            log(f"  {rec['arm']:<12} trial {rec['trial']:>2} seed {rec['seed']}: best {fmt(rec['best_severity'])} "
                f"({'reached' if rec['reached'] else 'censored'}) cpu {rec['cpu_used']}s")
    records.sort(key=lambda r: (ARMS.index(r["arm"]), r["trial"]))
    options = {"trials": trials, "cpu_seconds": cpu_seconds, "threshold": threshold, "seed_base": seed_base,
               "parallel": parallel, "arms": list(arms), "seed_corpus": seed_corpus}
    result = document(records, trials, cpu_seconds, threshold, seed_base, seed_corpus,
                      provenance_module.provenance("fuzz", options))
    write_result(out / "hunt-eval.json", result)
    text = table(result)
    (out / "hunt-eval.txt").write_text(text + "\n")
    shutil.rmtree(scratch, ignore_errors=True)
    log(text)
    return result


def add_arguments(p):
    p.add_argument("--trials", type=bounded_int(1, 1000), default=10, metavar="N",
                   help="trials per arm, 1 to 1000 (default 10; the field's minimum)")
    p.add_argument("--seconds", type=bounded_int(1, 86400), default=600, metavar="S",
                   help="CPU seconds per trial, 1 to 86400 (default 600)")
    p.add_argument("--out", metavar="DIR", help="results directory (default results/hunt-eval)")
    p.add_argument("--threshold", type=bounded_float(0.0, 1.0), default=0.6, metavar="X",
                   help="severity a trial must reach, 0 to 1 (default 0.6)")
    p.add_argument("--seed-base", type=bounded_int(0, 2**32 - 1000), default=1, metavar="S",
                   help="seed of the first trial (trial i uses S + i)")
    p.add_argument("--parallel", type=bounded_int(1, 256), default=1, metavar="P",
                   help="trials run at once, 1 to 256 (budgets are CPU time)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    p.add_argument("--seed-corpus", action="store_true", help="start the fuzzing arms from corpus/frag_hunt")
    p.add_argument("--no-build", action="store_true", help=argparse.SUPPRESS)
    return p


def parser():
    return add_arguments(argparse.ArgumentParser(prog="vmfrag hunt-eval", description=__doc__.split("\n")[0]))


def main_with(a):
    arms = tuple(x for x in a.arms.split(",") if x)
    if not arms or any(x not in ARMS for x in arms):
        print(f"vmfrag: error: --arms takes a comma-separated subset of {','.join(ARMS)}", file=sys.stderr)
        return 2
    bootstrap.ensure_packages()
    out = Path(a.out) if a.out else paths.RESULTS / "hunt-eval"
    # On its own, an adhoc job with a run manifest, so that `vmfrag report OUT` knows the run
    # (nightly calls run() inside its own).
    manifest = RunManifest(out, "adhoc", flavour="fuzz", options={"trials": a.trials, "seconds": a.seconds,
                                                                  "threshold": a.threshold, "arms": list(arms)},
                           steps=["hunt-eval"], command=["vmfrag", "hunt-eval", *sys.argv[1:]])
    try:
        with manifest.step("hunt-eval") as step:
            run(a.trials, a.seconds, out, a.threshold, a.seed_base, a.parallel, arms, do_build=not a.no_build,
                seed_corpus=a.seed_corpus)
            step.outputs.append("hunt-eval.json")
    except build.BuildError as e:
        manifest.finish(1)
        print(f"vmfrag: error: {e}", file=sys.stderr)
        return 1
    manifest.finish(0)
    return 0


def main(argv):
    return main_with(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
