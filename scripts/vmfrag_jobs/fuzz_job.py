"""`vmfrag fuzz TARGET`: builds the fuzz flavour and runs one libFuzzer target for a time budget.

Keeps what the run found under the results directory (default results/fuzz/<target>/):

  corpus/     the working corpus (seeded from corpus/<name>/ when empty; the source tree is only read)
  crashes/    libFuzzer's crash/leak/timeout artifacts, each beside its decoded `.vmtrace`
  findings/   fuzz_frag_hunt's findings (vmtrace, the severity ladder) and, for the best one,
              `<name>.min.vmtrace` (minimised keeping its kind at or below its severity) with the
              failure kind `vmfrag replay --json` reports for it
  stats.json  libFuzzer's final stats and the summary below

and prints a one-screen summary. J > 1 jobs use libFuzzer's -fork=J. Until the CLI is wired
(`scripts/vmfrag fuzz`), run it as `PYTHONPATH=scripts python3 -m vmfrag_jobs.fuzz_job TARGET ...`.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import bootstrap, build, paths
from .arguments import bounded_int

TARGETS = {"fuzz_trace_parser": "trace_parser", "fuzz_frag_hunt": "frag_hunt", "fuzz_ops": "ops"}
MAX_LEN = {"fuzz_trace_parser": 4096, "fuzz_frag_hunt": 1536, "fuzz_ops": 1024}
STAT_LINE = re.compile(r"^stat::(\w+):\s+(\S+)")
# libFuzzer's status lines: "#123456	NEW    cov: 321 ft: 654 corp: 12/3456b ... exec/s: 7890 rss: 45Mb"
STATUS_LINE = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+")
EXEC_RATE = re.compile(r"exec/s: (\d+)")
HUNT_LINE = re.compile(r"vmfrag-hunt: best (\S+) kind (\S+) execs (\d+) ops (\d+) cpu (\S+)")
FAILURE_KIND = re.compile(r"^# finding: (\S+) at op")


def fuzz_binary(target):
    return paths.build_dir("fuzz") / "fuzz" / target


def release_tool(*parts):
    return paths.build_dir("release").joinpath(*parts)


def parse_libfuzzer_log(text):
    """Final stats (stat:: lines), the last status line, and the hunt's best-severity lines."""
    stats, last, hunt = {}, None, []
    for line in text.splitlines():
        m = STAT_LINE.match(line)
        if m:
            value = m.group(2)
            stats[m.group(1)] = float(value) if "." in value else int(value)
            continue
        m = STATUS_LINE.match(line)
        if m:
            rate = EXEC_RATE.search(line)
            last = {"execs": int(m.group(1)), "event": m.group(2), "cov": int(m.group(3)), "ft": int(m.group(4)),
                    "corpus": int(m.group(5)), "exec_per_sec": int(rate.group(1)) if rate else None}
            continue
        m = HUNT_LINE.search(line)
        if m:
            hunt.append({"best": float(m.group(1)), "kind": m.group(2), "execs": int(m.group(3)),
                         "ops": int(m.group(4)), "cpu": float(m.group(5))})
    return stats, last, hunt


def decode_to_trace(target, src, dst):
    """Writes the vmtrace the target runs for input `src`. True on success."""
    name = TARGETS[target]
    if name == "trace_parser":  # the input is a trace (or text that failed to be one)
        shutil.copyfile(src, dst)
        return True
    r = subprocess.run([str(release_tool("harness", "vmfrag-fuzz-input")), "decode", name, str(src), "-o", str(dst)],
                       capture_output=True, text=True)
    return r.returncode == 0


def replay_kind(trace):
    """The first failure kind `vmfrag replay --json` reports for a trace, or None."""
    r = subprocess.run([str(release_tool("harness", "cli", "vmfrag")), "replay", str(trace), "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    failures = json.loads(r.stdout)["failures"]
    return failures[-1]["kind"] if failures else None


def minimize_best(findings_dir):
    """Minimises the lowest-severity finding; returns a dict describing it, or None."""
    files = sorted(findings_dir.glob("finding-*.vmtrace"),
                   key=lambda p: (float(p.name.split("-")[-2]), p.name))
    if not files:
        return None
    best = files[0]
    kind = next((m.group(1) for m in map(FAILURE_KIND.match, best.read_text().splitlines()) if m), None)
    out = best.with_suffix(".min.vmtrace")
    # Keeps a failure of the finding's kind at or below its severity (the predicate minimiser).
    r = subprocess.run([str(release_tool("harness", "vmfrag-fuzz-input")), "minimize", "frag_hunt", str(best),
                        "-o", str(out)], capture_output=True, text=True)
    info = {"finding": best.name, "kind": kind, "minimized": None, "replayed_kind": None}
    if r.returncode == 0 and out.exists():
        info["minimized"] = out.name
        info["minimized_ops"] = sum(1 for ln in out.read_text().splitlines() if ln[:2] in ("a ", "f ", "p"))
        info["replayed_kind"] = replay_kind(out)
    return info


def run(target, seconds=60, jobs=1, corpus=None, out=None, runs=None, seed=None, features=True,
        max_len=None, do_build=True, log=print):
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    name = TARGETS[target]
    if do_build:
        build.build(build.FLAVOURS["fuzz"], log=log)
        build.build(build.FLAVOURS["release"], log=log)
    out = Path(out) if out else paths.RESULTS / "fuzz" / target
    work = Path(corpus) if corpus else out / "corpus"
    crashes, findings = out / "crashes", out / "findings"
    for d in (work, crashes, findings):
        d.mkdir(parents=True, exist_ok=True)
    seeds = paths.REPO / "corpus" / name
    cmd = [str(fuzz_binary(target)), f"-max_total_time={seconds}", "-print_final_stats=1",
           f"-artifact_prefix={crashes}/", f"-max_len={max_len or MAX_LEN[target]}",
           f"-dict={paths.REPO / 'corpus' / (name + '.dict')}"]
    if runs is not None:
        cmd.append(f"-runs={runs}")
    if seed is not None:
        cmd.append(f"-seed={seed}")
    if jobs > 1:
        cmd.append(f"-fork={jobs}")
    cmd += [str(work), str(seeds)]
    env = dict(os.environ, VMFRAG_FINDINGS_DIR=str(findings), VMFRAG_HUNT_PROGRESS="1",
               VMFRAG_HUNT_FEATURES="1" if features else "0")
    log(f"vmfrag: fuzzing {target} for {seconds}s ({jobs} job{'s' if jobs > 1 else ''}) -> {out}")
    started = time.monotonic()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    wall = time.monotonic() - started
    (out / "libfuzzer.log").write_text(r.stdout)
    stats, last, hunt = parse_libfuzzer_log(r.stdout)
    crash_files = sorted(p for p in crashes.iterdir() if p.is_file() and not p.name.endswith(".vmtrace"))
    for c in crash_files:
        decode_to_trace(target, c, c.with_name(c.name + ".vmtrace"))
    finding_files = sorted(findings.glob("finding-*.vmtrace"))
    best = minimize_best(findings) if finding_files and not any(p.name.endswith(".min.vmtrace") for p in finding_files) \
        else None
    summary = {
        "target": target, "seconds": seconds, "jobs": jobs, "wall_seconds": round(wall, 3),
        "exit_code": r.returncode, "command": cmd, "final_stats": stats, "last_status": last,
        "corpus_size": sum(1 for p in work.iterdir() if p.is_file()),
        "crashes": [c.name for c in crash_files],
        "findings": [p.name for p in finding_files if not p.name.endswith(".min.vmtrace")],
        "best_severity": hunt[-1]["best"] if hunt else None,
        "best_finding": best,
    }
    (out / "stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(summary_text(summary))
    return summary


def summary_text(s):
    execs = s["final_stats"].get("number_of_executed_units") or (s["last_status"] or {}).get("execs")
    rate = s["final_stats"].get("average_exec_per_sec") or (s["last_status"] or {}).get("exec_per_sec")
    lines = [f"vmfrag fuzz {s['target']}: {s['wall_seconds']:.0f}s, {execs} execs ({rate}/s), corpus {s['corpus_size']}, "
             f"exit {s['exit_code']}",
             f"  crashes: {len(s['crashes'])}" + (f" ({', '.join(s['crashes'][:3])})" if s["crashes"] else "")]
    if s["target"] == "fuzz_frag_hunt":
        lines.append(f"  findings: {len(s['findings'])}, best severity {s['best_severity']}")
        b = s["best_finding"]
        if b:
            lines.append(f"  best finding {b['finding']}: {b['kind']}; minimised to {b.get('minimized_ops')} ops, "
                         f"replays as {b['replayed_kind']}")
    return "\n".join(lines)


def add_arguments(p):
    p.add_argument("target", choices=sorted(TARGETS))
    p.add_argument("--seconds", type=bounded_int(1, 7 * 86400), default=60, metavar="N",
                   help="wall-clock budget, 1 to 604800 (default 60)")
    p.add_argument("--jobs", type=bounded_int(1, 256), default=1, metavar="J",
                   help="parallel fuzzing processes (libFuzzer -fork), 1 to 256 (default 1)")
    p.add_argument("--corpus", metavar="DIR", help="working corpus directory (default: OUT/corpus)")
    p.add_argument("--out", metavar="DIR", help="results directory (default: results/fuzz/TARGET)")
    p.add_argument("--runs", type=bounded_int(1, 10**12), metavar="N", help="stop after this many runs (for tests)")
    p.add_argument("--seed", type=bounded_int(0, 2**32 - 1), metavar="S", help="libFuzzer -seed, 0 to 4294967295")
    p.add_argument("--no-features", action="store_true", help="fuzz_frag_hunt without its state features")
    p.add_argument("--no-build", action="store_true", help=argparse.SUPPRESS)
    return p


def parser():
    return add_arguments(argparse.ArgumentParser(prog="vmfrag fuzz",
                                                 description="run one libFuzzer target for a time budget"))


def main_with(a):
    bootstrap.ensure_packages()
    try:
        s = run(a.target, a.seconds, a.jobs, a.corpus, a.out, a.runs, a.seed, not a.no_features, do_build=not a.no_build)
    except build.BuildError as e:
        print(f"vmfrag: error: {e}", file=sys.stderr)
        return 1
    # A crash is a job failure; findings are results.
    return 1 if s["crashes"] else 0


def main(argv):
    return main_with(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
