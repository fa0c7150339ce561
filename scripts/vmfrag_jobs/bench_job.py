"""`scripts/vmfrag bench`: builds the release flavour (which has -Dbenchmark=true), runs
build/release/bench/vmfrag_bench with repetitions, writes its Google Benchmark JSON, validates it,
checks suite 1's placements agree, and prints the summary table (bench_results.py).

Exit codes: 0 ok; 1 the run or its JSON failed (a benchmark error, a malformed report); 2 usage
(every numeric option is checked against its range before anything is built; a filter that
matches no benchmark); 3 two suite-1 implementations placed differently.
"""
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from . import bench_results, bootstrap, build, paths
from .results.writing import write_atomically

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGENCE = 0, 1, 2, 3
REPETITIONS_RANGE = (1, 1000)
MIN_TIME_RANGE = (0.001, 60.0)
DEFAULT_REPETITIONS = 9  # enough for compare.py's Mann-Whitney U test to mean something
DEFAULT_MIN_TIME = {True: 0.005, False: 0.1}  # seconds per repetition: --quick, full


class UsageError(ValueError):
    pass


def _number(text, convert, option, lo, hi, unit=""):
    """text -> number in [lo, hi], or UsageError naming the option and its range."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not lo <= value <= hi:
        kind = "an integer" if convert is int else "a number"
        raise UsageError(f"{option} must be {kind} in [{lo}, {hi}]{unit}, got {text!r}")
    return value


def check_options(args):
    """Raises UsageError (one line) for an option out of its range; fills in the defaults. Numeric
    options arrive as text so that a non-number is reported the same way as an out-of-range one."""
    args.repetitions = (DEFAULT_REPETITIONS if args.repetitions is None
                        else _number(args.repetitions, int, "--repetitions", *REPETITIONS_RANGE))
    args.min_time = (DEFAULT_MIN_TIME[args.quick] if args.min_time is None
                     else _number(args.min_time, float, "--min-time", *MIN_TIME_RANGE, unit=" seconds"))
    cpus = os.cpu_count() or 1
    if args.cpu is not None:
        args.cpu = _number(args.cpu, int, "--cpu", 0, cpus - 1)
    if args.filter is not None:
        try:
            re.compile(args.filter)
        except re.error as e:
            raise UsageError(f"--filter is not a regular expression: {e}") from None
    if args.out is None:
        paths.RESULTS.mkdir(exist_ok=True)
        args.out = str(paths.RESULTS / ("bench-quick.json" if args.quick else "bench.json"))
    out_dir = Path(args.out).resolve().parent
    if not out_dir.is_dir():
        raise UsageError(f"--out: directory {out_dir} does not exist")


def bench_binary():
    return paths.build_dir("release") / "bench" / "vmfrag_bench"


def binary_args(args):
    cmd = [str(bench_binary())]
    if args.quick:
        cmd.append("--vmfrag_quick")
    if args.filter is not None:
        cmd.append(f"--benchmark_filter={args.filter}")
    return cmd


def listed_benchmarks(args):
    r = subprocess.run(binary_args(args) + ["--benchmark_list_tests=true"], capture_output=True, text=True)
    return [ln for ln in r.stdout.splitlines() if ln.strip()] if r.returncode == 0 else []


def run(args):
    try:
        check_options(args)
    except UsageError as e:
        print(f"vmfrag: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    bootstrap.ensure_packages()
    build.build(build.FLAVOURS["release"])
    names = listed_benchmarks(args)
    if not names:
        print(f"vmfrag: error: --filter {args.filter!r} matches no benchmark", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    # vmfrag_bench writes its JSON to a temporary file beside the target; the result reaches --out
    # only whole, through the same writer as every result file (it never replaces a FIFO or a device).
    fd, partial_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial",
                                        dir=str(out.resolve().parent) if not str(out).startswith("/dev/") else None)
    os.close(fd)
    partial = Path(partial_name)
    try:
        return _run_and_report(args, names, out, partial)
    finally:
        partial.unlink(missing_ok=True)


def _run_and_report(args, names, out, partial):
    print(f"vmfrag: bench: {len(names)} benchmarks x {args.repetitions} repetitions, "
          f"min {args.min_time} s each -> {out}", flush=True)
    cmd = binary_args(args) + [
        f"--benchmark_out={partial}", "--benchmark_out_format=json",
        f"--benchmark_repetitions={args.repetitions}", f"--benchmark_min_time={args.min_time}",
        "--benchmark_display_aggregates_only=true"]
    pin = (lambda: os.sched_setaffinity(0, {args.cpu})) if args.cpu is not None else None
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL if not args.verbose else None, preexec_fn=pin)
    if r.returncode != 0 or not partial.exists():
        print(f"vmfrag: error: vmfrag_bench exited {r.returncode}", file=sys.stderr)
        partial.unlink(missing_ok=True)
        return EXIT_FAILED
    doc = json.loads(partial.read_text())
    doc["context"]["vmfrag.pinned_cpu"] = "none" if args.cpu is None else str(args.cpu)
    doc["context"]["vmfrag.command"] = shlex.join(["scripts/vmfrag", "bench", *sys.argv[2:]])
    write_atomically(out, json.dumps(doc, indent=2) + "\n")
    problems = bench_results.validate(doc)
    for p in problems:
        print(f"vmfrag: bench: invalid report: {p}", file=sys.stderr)
    unsupported = sorted(k[len("perf."):] for k, v in doc["context"].items()
                         if k.startswith("perf.") and str(v).startswith("unsupported"))
    if unsupported:
        reasons = sorted({doc["context"]["perf." + e] for e in unsupported})
        print(f"vmfrag: bench: perf counters absent ({', '.join(reasons)}): {', '.join(unsupported)}")
    rows = bench_results.summary_rows(doc)
    if rows:
        print(bench_results.format_rows(rows))
    divergences = bench_results.placement_divergences(doc)
    for d in divergences:
        print(f"vmfrag: bench: placements differ: {d}", file=sys.stderr)
    if divergences:
        return EXIT_DIVERGENCE
    return EXIT_FAILED if problems else EXIT_OK
