"""Reads a `vmfrag_bench` Google Benchmark JSON file: validates it, checks that every suite-1
implementation placed identically, and computes the ratios issue 12 sets goals for.

Pure computation on the parsed JSON (no building, no running), so it is tested on fixtures.
Measurements are medians of the repetitions' cpu_time (process CPU time, user + kernel): on a shared
2-vCPU machine a preempted benchmark's real_time grows while its CPU time does not, so ratios taken
from CPU time hold better; real_time is in the JSON beside it. Goals are issue 12's and are only
ever printed beside a measurement, never used in place of one. Thread scaling (issue 15) is the one
exception to CPU time: T threads spend T times the CPU, so its ratio is of real time per operation.
"""
import math
import re
import statistics
from dataclasses import dataclass

PERF_EVENTS = ("minor-faults", "major-faults", "dTLB-load-misses", "dTLB-store-misses", "iTLB-load-misses",
               "cycles", "instructions")
PERF_OUTCOME = re.compile(r"^(user\+kernel|user only \(kernel refused: E[A-Z0-9]+\)|unsupported: E[A-Z0-9]+)$")
TIME_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
ORDER_NAMES = {0: "LIFO after sequential fill", 1: "LIFO after churn", 2: "random frees"}
BACKINGS = {0: "memfd", 1: "anon"}
BACKING_MODES = {0: "none", 1: "anon", 2: "memfd"}  # BackingMode's values, as BM_ThreadScaling's backing arg
THREAD_SCALING_GOAL = 1.0  # issue 15: 2 threads at least one thread's throughput (stretch: 1.6x)


def args_of(run_name):
    """'BM_X/live:1000/order:0' -> ('BM_X', {'live': 1000, 'order': 0})."""
    base, *parts = run_name.split("/")
    args = {}
    for p in parts:
        key, sep, value = p.partition(":")
        if sep and value.lstrip("-").isdigit():
            args[key] = int(value)
    return base, args


def iterations(doc):
    """run_name -> list of iteration entries (the repetitions)."""
    runs = {}
    for b in doc.get("benchmarks", []):
        if b.get("run_type") == "iteration":
            runs.setdefault(b["run_name"], []).append(b)
    return runs


def median_ns(entries):
    return statistics.median(e["cpu_time"] * TIME_UNIT_NS[e["time_unit"]] for e in entries)


def median_real_ns(entries):
    return statistics.median(e["real_time"] * TIME_UNIT_NS[e["time_unit"]] for e in entries)


def thread_scaling_pairs(names):
    """(configuration, threads, numerator, denominator, goal) for each BM_ThreadScaling run with T > 1
    threads beside the same run with one thread. The ratio is real time per operation with T threads
    over real time per operation with one, so <= 1.0 means T threads together do at least one
    thread's work per second; the goal (no collapse) is set for T = 2, the machine's core count."""
    names = set(names)
    for name in sorted(names):
        base, a = args_of(name)
        if base != "BM_ThreadScaling" or a.get("threads", 1) <= 1:
            continue
        single = re.sub(r"/threads:\d+$", "/threads:1", name)
        if single == name or single not in names:
            continue
        extra = ", ".join(f"{k} {v}" for k, v in sorted(a.items()) if k not in ("backing", "threads", "thread_cache"))
        cache = {1: "per-thread caches", 2: "small per-thread caches"}.get(a.get("thread_cache"))
        if cache:
            extra = ", ".join(filter(None, [cache, extra]))
        config = f"backing {BACKING_MODES.get(a.get('backing'), a.get('backing'))}" + (f", {extra}" if extra else "")
        yield config, a["threads"], name, single, THREAD_SCALING_GOAL if a["threads"] == 2 else None


def validate(doc):
    """Problems with the report, one string each; [] when it is well-formed."""
    problems = []
    context = doc.get("context")
    benchmarks = doc.get("benchmarks")
    if not isinstance(context, dict):
        return ["no context object"]
    if not isinstance(benchmarks, list) or not benchmarks:
        return ["no benchmarks"]
    for b in benchmarks:
        name = b.get("name", "?")
        if b.get("error_occurred"):
            problems.append(f"{name}: error: {b.get('error_message', '')}")
            continue
        if b.get("run_type") not in ("iteration", "aggregate") or "run_name" not in b:
            problems.append(f"{name}: missing run_type/run_name")
        for field in ("real_time", "cpu_time"):
            t = b.get(field)
            if not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
                problems.append(f"{name}: {field} {t!r}")
        if b.get("time_unit") not in TIME_UNIT_NS:
            problems.append(f"{name}: time_unit {b.get('time_unit')!r}")
    unsupported = []
    for event in PERF_EVENTS:
        outcome = context.get(f"perf.{event}")
        if outcome is None:
            problems.append(f"context: perf.{event} missing")
        elif not PERF_OUTCOME.match(outcome):
            problems.append(f"context: perf.{event} = {outcome!r} is not an outcome")
        elif outcome.startswith("unsupported"):
            unsupported.append(event)
    for b in benchmarks:
        for event in unsupported:
            if event in b:
                problems.append(f"{b.get('name')}: reports {event} although the context says it is unsupported")
    runs = iterations(doc)
    aggregates = {(b.get("run_name"), b.get("aggregate_name")) for b in benchmarks if b.get("run_type") == "aggregate"}
    for run_name, entries in runs.items():
        if len(entries) >= 2:
            for agg in ("mean", "median", "stddev"):
                if (run_name, agg) not in aggregates:
                    problems.append(f"{run_name}: {len(entries)} repetitions but no {agg} aggregate")
    return problems


def placement_divergences(doc):
    """Suite-1 configurations whose implementations report different placement hashes."""
    hashes = {}
    for run_name, entries in iterations(doc).items():
        base, args = args_of(run_name)
        if "placement_hash" not in entries[0] or not {"live", "order", "lazy"} <= args.keys():
            continue
        key = (args["live"], args["order"], args["lazy"])
        for e in entries:
            hashes.setdefault(key, {}).setdefault(e["placement_hash"], set()).add(base)
    out = []
    for key, by_hash in sorted(hashes.items()):
        if len(by_hash) > 1:
            detail = "; ".join(f"{sorted(names)} -> {h:.0f}" for h, names in by_hash.items())
            out.append(f"live {key[0]} order {key[1]} lazy {key[2]}: {detail}")
    return out


@dataclass
class Row:
    suite: str
    config: str
    measured: str      # the measurement, formatted
    goal: str          # issue 12's goal for this row, or "-"
    verdict: str       # "met", "NOT met" or "" when there is no goal


def _ratio_row(suite, config, num, den, goal_ratio, ratio=None):
    """A ratio row beside its goal; `ratio` defaults to num / den (interleaved runs pass the median of
    their per-turn ratios, which is not the ratio of the medians)."""
    ratio = num / den if ratio is None else ratio
    measured = f"{ratio:.2f}x ({num:,.0f} / {den:,.0f} ns)"
    if goal_ratio is None:
        return Row(suite, config, measured, "-", "")
    return Row(suite, config, measured, f"<= {goal_ratio:.2f}x", "met" if ratio <= goal_ratio else "NOT met")


def median_pairs(names):
    """The (suite, configuration, numerator, denominator, goal) ratios issue 12 sets, over the run
    names present: suite 1 (vmfrag pair vs the minimal baseline) and suite 2 (a mapped pair vs the
    bare system calls it issues). Goal None where the issue sets none (LIFO after a sequential fill
    has an absolute goal instead, and live counts under 100k are context)."""
    names = set(names)
    for name in sorted(names, key=lambda n: (args_of(n)[1].get("live", 0), n)):
        base, a = args_of(name)
        if base != "BM_VmallocVfreePair":
            continue
        baseline = name.replace("BM_VmallocVfreePair", "BM_BaselinePair", 1)
        if baseline in names:
            lazy = "default lazy" if a["lazy"] else "eager"
            config = f"{a['live']:,} live, {ORDER_NAMES[a['order']]}, {lazy}"
            goal = 1.25 if a["order"] != 0 and a["live"] >= 100000 else None
            yield "1", config, name, baseline, goal
    for name in sorted(names, key=lambda n: sorted(args_of(n)[1].items())):
        base, a = args_of(name)
        if base != "BM_VmallocMappedPair":
            continue
        bare = name.replace("BM_VmallocMappedPair", "BM_BareSyscallsPair", 1)
        if bare in names:
            yield "2", f"{BACKINGS[a['backing']]}, {a['pages']} pages, {a['live']:,} live", name, bare, 1.15


def ratio_definitions(doc):
    """The ratios as a vmfrag-bench-ratios document lists them (the report computes each from the
    benchmarks it names)."""
    out = []
    for suite, config, num, den, goal in median_pairs(iterations(doc)):
        what = "vs the minimal baseline" if suite == "1" else "vs the bare system calls"
        out.append({"name": f"suite {suite}: {config} {what}", "numerator": num, "denominator": den,
                    "goal": {"max": goal} if goal is not None else None,
                    "description": "issue 12: " + ("exact-fit pair within 1.25x of the minimal baseline" if suite == "1"
                                                   else "mapped pair within 1.15x of its bare system calls")})
    for config, threads, num, den, goal in thread_scaling_pairs(iterations(doc)):
        out.append({"name": f"threads: {config}, real time per op with {threads} threads vs 1",
                    "numerator": num, "denominator": den, "goal": {"max": goal} if goal is not None else None,
                    "description": "issue 15: <= 1 means the threads together keep one thread's throughput "
                                   "(no collapse on 2 cores)"})
    return out


def summary_rows(doc):
    """The summary table: suite 1 and 2 ratios beside issue 12's goals, suite 4's 4 KiB/THP ratio."""
    runs = iterations(doc)
    med = {name: median_ns(entries) for name, entries in runs.items()}
    rows = []
    for suite, config, num, den, goal in median_pairs(med):
        if suite != "1":
            continue
        a = args_of(num)[1]
        rows.append(_ratio_row("1", config + " (vs baseline)", med[num], med[den], goal))
        if a["order"] == 0 and a["live"] >= 100000:
            ns = med[num]
            rows.append(Row("1", config + " (ns/pair)", f"{ns:,.0f} ns", "<= 150 ns", "met" if ns <= 150 else "NOT met"))
    for name in sorted(runs, key=lambda n: (args_of(n)[1].get("live", 0), n)):
        base, a = args_of(name)
        if base != "BM_InterleavedVmallocVsBaseline":
            continue
        reps = runs[name]
        ratio = statistics.median(e["ratio"] for e in reps)
        vmfrag_ns = statistics.median(e["vmfrag_ns"] for e in reps)
        baseline_ns = statistics.median(e["baseline_ns"] for e in reps)
        lazy = "default lazy" if a["lazy"] else "eager"
        config = f"{a['live']:,} live, {ORDER_NAMES[a['order']]}, {lazy} (interleaved, wall time)"
        goal = 1.25 if a["order"] != 0 and a["live"] >= 100000 else None
        rows.append(_ratio_row("1", config, vmfrag_ns, baseline_ns, goal, ratio=ratio))
    for suite, config, num, den, goal in median_pairs(med):
        if suite == "2":
            rows.append(_ratio_row("2", config + " (vs bare syscalls)", med[num], med[den], goal))
    for name in sorted(runs, key=lambda n: sorted(args_of(n)[1].items())):
        base, a = args_of(name)
        if base != "BM_InterleavedMappedVsBare":
            continue
        reps = runs[name]
        ratio = statistics.median(e["ratio"] for e in reps)
        vmfrag_ns = statistics.median(e["vmfrag_ns"] for e in reps)
        bare_ns = statistics.median(e["bare_ns"] for e in reps)
        config = f"{BACKINGS[a['backing']]}, {a['pages']} pages, {a['live']:,} live (interleaved, wall time)"
        rows.append(_ratio_row("2", config, vmfrag_ns, bare_ns, 1.15, ratio=ratio))
    for config, threads, num, den, goal in thread_scaling_pairs(runs):
        speedup = median_real_ns(runs[den]) / median_real_ns(runs[num])
        measured = (f"{speedup:.2f}x one thread's ops/s ({median_real_ns(runs[num]):,.0f} / "
                    f"{median_real_ns(runs[den]):,.0f} ns per op, real time)")
        verdict = "" if goal is None else ("met" if speedup >= 1 / goal else "NOT met")
        rows.append(Row("threads", f"{config}, {threads} threads vs 1", measured,
                        "-" if goal is None else f">= {1 / goal:.2f}x", verdict))
    for name in sorted(med, key=lambda n: args_of(n)[1].get("mib", 0)):
        base, a = args_of(name)
        if base != "BM_PointerChaseVmalloc":
            continue
        huge = name.replace("BM_PointerChaseVmalloc", "BM_PointerChaseAnonHuge", 1)
        if huge not in med:
            continue
        loads = runs[name][0].get("loads_per_iteration", 1)
        thp = runs[huge][0].get("thp_fraction", 0)
        config = f"{a['mib']} MiB chase, 4 KiB vmalloc vs THP anon (thp_fraction {thp:.2f})"
        rows.append(_ratio_row("4", config, med[name] / loads, med[huge] / loads, None))
    return rows


def format_rows(rows):
    header = ("suite", "configuration", "measured (median; CPU time unless marked)", "goal (issue 12; threads: 15)", "")
    table = [header] + [(r.suite, r.config, r.measured, r.goal, r.verdict) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)
