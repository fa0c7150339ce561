"""`vmfrag fuzz TARGET`: builds the fuzz flavour and runs one libFuzzer target for a time budget.

Writes, under the results directory OUT (default results/fuzz/<target>/), in the results layer's
formats (reports/README.md; fuzz_records.py builds the documents, results.writing writes them):

  <target>.stats.json        vmfrag-fuzz-stats: execs, execs/s, corpus, features, and a history from
                             libFuzzer's status lines (timestamped as they arrive)
  findings/<id>.vmtrace+json vmfrag-finding: fuzz_frag_hunt's and fuzz_phys_hunt's findings, minimised (keeping their kind at
                             or below their severity), deduplicated by the minimised finding's signature
                             (harness/hunt/frag_hunt.h), with the replay's address-space map at the failure
  bugs/<id>.json             vmfrag-bug per distinct crash (deduplicated by kind + top frames), with
                             <id>.vmtrace (the decoded input) and <id>.input (the raw one)
  libfuzzer.log              libFuzzer's output
  crashes/ ladder/ corpus/   libFuzzer's raw artifacts, the hunt's unminimised findings, and the
                             working corpus (default; `corpus=` puts it elsewhere). The report skips them.

and prints a one-screen summary. J > 1 jobs use libFuzzer's -fork=J.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import bootstrap, build, fuzz_records, paths
from .arguments import bounded_int
from .results import provenance as provenance_module
from .results import schemas
from .results.writing import RunManifest, now_iso, write_result

TARGETS = {"fuzz_trace_parser": "trace_parser", "fuzz_frag_hunt": "frag_hunt", "fuzz_phys_hunt": "phys_hunt",
           "fuzz_ops": "ops"}
# The hunts: their findings are minimised (vmfrag-fuzz-input minimize NAME) and written as vmfrag-finding.
HUNTS = ("frag_hunt", "phys_hunt")
# Accepted by run() for the tests, not offered on the command line: fuzz_ops on the allocator with
# the planted coalescing bug (meson option planted_bug_test).
TEST_TARGETS = {"fuzz_ops_planted": "ops"}
MAX_LEN = {"fuzz_trace_parser": 4096, "fuzz_frag_hunt": 1536, "fuzz_phys_hunt": 1536, "fuzz_ops": 1024,
           "fuzz_ops_planted": 256}
# Findings minimised per run and kind, lowest severity first (each minimisation replays the trace
# a few hundred times: about a second).
MINIMISED_PER_KIND = 4


def reproducible(cmd):
    """`cmd` run without address-space randomisation (`setarch ARCH -R`, util-linux). Abseil's hash
    tables, which the allocator uses, hash with a seed taken from an address: with randomisation,
    the same input executes a different number of times some code that has coverage (std::pair
    moves when a table rehashes), libFuzzer sees other features, and a run with a fixed -seed is
    not reproducible. With it off, plus -reload=0 (no time-driven rereading of the corpus), and
    fuzz/coverage_ignorelist.txt, the same seed and binary give the same run (fuzz/README.md)."""
    return ["setarch", platform.machine(), "-R", *cmd]


def fuzz_binary(target):
    return paths.build_dir("fuzz") / "fuzz" / target


def release_tool(*parts):
    return paths.build_dir("release").joinpath(*parts)


def parse_libfuzzer_log(text):
    """Final stats (stat:: lines), the last status line, and the hunt's best-severity lines."""
    last = None
    for line in text.splitlines():
        last = fuzz_records.parse_status(line) or last
    return fuzz_records.parse_final_stats(text), last, fuzz_records.parse_hunt_progress(text)


def decode_to_trace(target, src, dst):
    """Writes the vmtrace the target runs for input `src`. True on success."""
    name = {**TARGETS, **TEST_TARGETS}[target]
    if name == "trace_parser":  # the input is a trace (or text that failed to be one)
        shutil.copyfile(src, dst)
        return True
    r = subprocess.run([str(release_tool("harness", "vmfrag-fuzz-input")), "decode", name, str(src), "-o", str(dst)],
                       capture_output=True, text=True)
    return r.returncode == 0


def replay_json(trace):
    """`vmfrag replay TRACE --json` parsed, or None."""
    r = subprocess.run([str(release_tool("harness", "cli", "vmfrag")), "replay", str(trace), "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def replay_kind(trace):
    """The last failure kind `vmfrag replay --json` reports for a trace, or None."""
    doc = replay_json(trace)
    failures = doc["failures"] if doc else []
    return failures[-1]["kind"] if failures else None


def _ladder_severity(path):
    comment = fuzz_records.finding_comment(path.read_text())
    return comment["severity"] if comment else float("inf")


def write_findings(target, ladder, findings, prov, log):
    name = {**TARGETS, **TEST_TARGETS}[target]
    """Minimises the best ladder findings of each kind and writes the distinct ones as vmfrag-finding
    records; returns [(id, document)] of what this run wrote, best first."""
    by_kind = {}
    for p in sorted(ladder.glob("finding-*.vmtrace"), key=lambda p: (_ladder_severity(p), p.name)):
        comment = fuzz_records.finding_comment(p.read_text())
        # no-virtual-space (the region was simply full) is no fragmentation finding
        if comment and comment["kind"] in schemas.FINDING_KINDS:
            by_kind.setdefault(comment["kind"], []).append(p)
    written, seen = [], set()
    tmp = findings / ".minimising.vmtrace"
    try:
        for kind, paths_of_kind in sorted(by_kind.items()):
            for src in paths_of_kind[:MINIMISED_PER_KIND]:
                r = subprocess.run([str(release_tool("harness", "vmfrag-fuzz-input")), "minimize", name, str(src),
                                    "-o", str(tmp)], capture_output=True, text=True)
                if r.returncode != 0 or not tmp.exists():
                    log(f"vmfrag: cannot minimise {src.name}: {r.stderr.strip()}")
                    continue
                text = tmp.read_text()
                comment = fuzz_records.finding_comment(text)
                replay = replay_json(tmp)
                if comment is None or replay is None or comment["signature"] in seen:
                    continue
                seen.add(comment["signature"])
                fid = fuzz_records.finding_id(target, comment["signature"])
                sidecar = findings / f"{fid}.json"
                doc = fuzz_records.finding_record(target, comment, replay, f"{fid}.vmtrace",
                                                  fuzz_records.count_ops(src.read_text()), fuzz_records.count_ops(text),
                                                  now_iso(), prov, physical_map=fuzz_records.physical_map(comment))
                doc["replay_command"] = f"scripts/vmfrag replay {findings / (fid + '.vmtrace')} --json"
                doc["replayed_kind"] = (replay.get("failures") or [{}])[-1].get("kind")
                doc["unminimised_trace"] = str(src)
                os.replace(tmp, findings / f"{fid}.vmtrace")
                write_result(sidecar, doc)
                written.append((fid, doc))
    finally:
        if tmp.exists():
            tmp.unlink()
    return sorted(written, key=lambda w: w[1]["severity"])


def crash_report(target, artifact, reports):
    """The report libFuzzer printed for an artifact or, when the log has none (-fork keeps the
    children's logs), the report of running the target on it once."""
    for path, text in reports.items():
        if Path(path).name == artifact.name:
            return text
    r = subprocess.run([str(fuzz_binary(target)), "-timeout=25", "-rss_limit_mb=2560", str(artifact)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", timeout=300,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    return r.stdout


def write_bugs(target, crashes, bugs, log_text, prov):
    """One vmfrag-bug record per distinct crash (same kind and top frames: one bug); returns [(id, document)]."""
    reports = fuzz_records.crash_reports(log_text)
    written = {}
    for artifact in sorted(p for p in crashes.iterdir() if p.is_file() and not p.name.endswith(".vmtrace")):
        report = crash_report(target, artifact, reports)
        probe = fuzz_records.bug_record(target, report, None, None, None, prov)
        bid = probe["id"]
        if bid in written:
            written[bid]["occurrences"] += 1
            continue
        shutil.copyfile(artifact, bugs / f"{bid}.input")
        decoded = decode_to_trace(target, artifact, bugs / f"{bid}.vmtrace")
        repro = f"{bid}.vmtrace" if decoded else f"{bid}.input"
        command = f"{fuzz_binary(target).relative_to(paths.REPO)} {bugs / (bid + '.input')}"
        doc = fuzz_records.bug_record(target, report, repro, command, now_iso(), prov)
        doc.update(occurrences=1, artifact=artifact.name)
        written[bid] = doc
    for bid, doc in written.items():
        write_result(bugs / f"{bid}.json", doc)
    return list(written.items())


def run_libfuzzer(cmd, env, log_path):
    """Runs libFuzzer, teeing its output to log_path; returns (exit code, wall seconds, history, text)."""
    started = time.monotonic()
    history, text = [], []
    with open(log_path, "w", encoding="utf-8") as log_file, subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        for line in proc.stdout:
            log_file.write(line)
            text.append(line)
            status = fuzz_records.parse_status(line)
            if status:
                history.append(dict(status, seconds=round(time.monotonic() - started, 3)))
        code = proc.wait()
    return code, time.monotonic() - started, history, "".join(text)


def run(target, seconds=60, jobs=1, corpus=None, out=None, runs=None, seed=None, features=True,
        max_len=None, do_build=True, log=print):
    """Runs `target` for `seconds` (or `runs` inputs) and writes its results into `out` (see the
    module comment); returns the summary dict that summary_text() prints."""
    names = {**TARGETS, **TEST_TARGETS}
    if target not in names:
        raise ValueError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    name = names[target]
    if do_build:
        build.build(build.FLAVOURS["fuzz"], log=log)
        build.build(build.FLAVOURS["release"], log=log)
    out = Path(out) if out else paths.RESULTS / "fuzz" / target
    work = Path(corpus) if corpus else out / "corpus"
    crashes, ladder, findings, bugs = out / "crashes", out / "ladder", out / "findings", out / "bugs"
    for d in (work, crashes, ladder, findings, bugs):
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
    else:  # one process: nobody else writes the corpus, and rereading it each second is timing-dependent
        cmd.append("-reload=0")
    cmd = reproducible(cmd + [str(work)] + ([str(seeds)] if target not in TEST_TARGETS else []))
    env = dict(os.environ, VMFRAG_FINDINGS_DIR=str(ladder), VMFRAG_HUNT_PROGRESS="1",
               VMFRAG_HUNT_FEATURES="1" if features else "0")
    options = {"target": target, "seconds": seconds, "jobs": jobs, "runs": runs, "seed": seed, "features": features,
               "max_len": max_len or MAX_LEN[target]}
    prov = provenance_module.provenance("fuzz", options)
    log(f"vmfrag: fuzzing {target} for {seconds}s ({jobs} job{'s' if jobs > 1 else ''}) -> {out}")
    code, wall, history, text = run_libfuzzer(cmd, env, out / "libfuzzer.log")
    stats, last, hunt = parse_libfuzzer_log(text)
    bug_docs = write_bugs(target, crashes, bugs, text, prov)
    finding_docs = write_findings(target, ladder, findings, prov, log) if name in HUNTS else []
    corpus_size = sum(1 for p in work.iterdir() if p.is_file())
    best = finding_docs[0][1] if finding_docs else None
    summary = {
        "target": target, "seconds": seconds, "jobs": jobs, "wall_seconds": round(wall, 3),
        "exit_code": code, "command": cmd, "final_stats": stats, "last_status": last,
        "corpus_size": corpus_size,
        "crashes": sorted(p.name for p in crashes.iterdir() if p.is_file() and not p.name.endswith(".vmtrace")),
        "bugs": [bid for bid, _ in bug_docs],
        "findings": [fid for fid, _ in finding_docs],
        "best_severity": hunt[-1]["best"] if hunt else None,
        "best_finding": None if best is None else {
            "id": best["id"], "kind": best["kind"], "severity": best["severity"],
            "minimized_ops": best["ops_after_minimisation"], "replayed_kind": best["replayed_kind"]},
    }
    stats_doc = fuzz_records.fuzz_stats(
        target, wall, history, stats, corpus_size, len(finding_docs), len(bug_docs), jobs, prov,
        exit_code=code, command=cmd, libfuzzer_final_stats=stats, best_severity=summary["best_severity"],
        hunt_progress=hunt, bug_ids=summary["bugs"], finding_ids=summary["findings"])
    summary["stats_file"] = str(out / f"{target}.stats.json")
    write_result(out / f"{target}.stats.json", stats_doc)
    log(summary_text(summary))
    return summary


def summary_text(s):
    execs = s["final_stats"].get("number_of_executed_units") or (s["last_status"] or {}).get("execs")
    rate = s["final_stats"].get("average_exec_per_sec") or (s["last_status"] or {}).get("exec_per_sec")
    lines = [f"vmfrag fuzz {s['target']}: {s['wall_seconds']:.0f}s, {execs} execs ({rate}/s), corpus {s['corpus_size']}, "
             f"exit {s['exit_code']}",
             f"  bugs: {len(s['bugs'])}" + (f" ({', '.join(s['bugs'][:3])})" if s["bugs"] else "")
             + f" from {len(s['crashes'])} crash artifact(s)"]
    if s["findings"] or s["best_severity"] is not None:
        lines.append(f"  findings: {len(s['findings'])}, best severity {s['best_severity']}")
        b = s["best_finding"]
        if b:
            lines.append(f"  best finding {b['id']}: {b['kind']} severity {b['severity']:.4f}; minimised to "
                         f"{b['minimized_ops']} ops, replays as {b['replayed_kind']}")
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
    out = Path(a.out) if a.out else paths.RESULTS / "fuzz" / a.target
    # On its own, `vmfrag fuzz` is an adhoc job: its directory gets a run manifest, so that
    # `vmfrag report OUT` knows the run (ci and nightly call run() inside their own manifest).
    manifest = RunManifest(out, "adhoc", flavour="fuzz", options={"target": a.target, "seconds": a.seconds,
                                                                  "jobs": a.jobs, "runs": a.runs, "seed": a.seed},
                           steps=["fuzz"], command=["vmfrag", "fuzz", *sys.argv[1:]])
    try:
        with manifest.step("fuzz") as step:
            s = run(a.target, a.seconds, a.jobs, a.corpus, out, a.runs, a.seed, not a.no_features,
                    do_build=not a.no_build)
            step.outputs.append(f"{a.target}.stats.json")
    except build.BuildError as e:
        manifest.finish(1)
        print(f"vmfrag: error: {e}", file=sys.stderr)
        return 1
    manifest.finish(1 if s["bugs"] else 0)
    # A crash is a job failure; findings are results.
    return 1 if s["bugs"] else 0


def main(argv):
    return main_with(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
