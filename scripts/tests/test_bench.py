"""`scripts/vmfrag bench` end to end on a few small benchmarks: the JSON it writes is valid Google
Benchmark output with repetitions and aggregates, every perf event is either counted or recorded
as `unsupported: <errno name>` in the context and then absent from every benchmark (never a 0),
suite 1's implementations place identically, the TLB model's counts are there, compare.py reads
two such files; options out of range exit 2 with one line before anything is built. The report
checks themselves (bench_results.py) are tested on hand-made JSON, including the failures they
must catch."""
import copy
import json
import math
import os
import re
import subprocess

import pytest

from vmfrag_jobs import bench_results

SMALL = (r"BM_(VmallocVfree|Baseline|VirtualSpace)Pair/live:1000/order:2/lazy:0$"
         r"|BM_PointerChaseVmalloc/mib:1$|BM_MallocFreePair/pages:1$")
COMPARE_PY = "/usr/share/benchmark/compare.py"


def vmfrag(repo, *args, env=None):
    return subprocess.run([str(repo / "scripts" / "vmfrag"), *map(str, args)], capture_output=True, text=True,
                          env=env)


@pytest.fixture(scope="module")
def quick_run(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    r = vmfrag(repo, "bench", "--quick", "--filter", SMALL, "--out", out)
    return r, out


def test_quick_run_writes_valid_json(quick_run):
    r, out = quick_run
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(out.read_text())
    assert bench_results.validate(doc) == []
    names = {b["run_name"] for b in doc["benchmarks"]}
    assert names == {"BM_VmallocVfreePair/live:1000/order:2/lazy:0", "BM_BaselinePair/live:1000/order:2/lazy:0",
                     "BM_VirtualSpacePair/live:1000/order:2/lazy:0", "BM_PointerChaseVmalloc/mib:1",
                     "BM_MallocFreePair/pages:1"}
    for name in names:
        reps = [b for b in doc["benchmarks"] if b["run_name"] == name and b["run_type"] == "iteration"]
        assert len(reps) == 9, name
        aggs = {b["aggregate_name"] for b in doc["benchmarks"] if b["run_name"] == name and b["run_type"] == "aggregate"}
        assert {"mean", "median", "stddev"} <= aggs, name
    assert not out.with_name(out.name + ".partial").exists()


def test_every_perf_event_is_counted_or_absent_with_its_errno(quick_run):
    _, out = quick_run
    doc = json.loads(out.read_text())
    iterations = [b for b in doc["benchmarks"] if b["run_type"] == "iteration"]
    for event in bench_results.PERF_EVENTS:
        outcome = doc["context"][f"perf.{event}"]
        if outcome.startswith("unsupported: "):
            assert re.fullmatch(r"unsupported: E[A-Z0-9]+", outcome), outcome
            assert all(event not in b for b in iterations), f"{event} reported although unsupported"
        else:
            assert outcome == "user+kernel" or outcome.startswith("user only"), outcome
            assert all(event in b and math.isfinite(b[event]) for b in iterations), event


def test_suite_one_places_identically_and_the_model_counts(quick_run):
    r, out = quick_run
    doc = json.loads(out.read_text())
    hashes = {b["placement_hash"] for b in doc["benchmarks"]
              if b["run_type"] == "iteration" and "placement_hash" in b}
    assert len(hashes) == 1
    chase = [b for b in doc["benchmarks"]
             if b["run_name"] == "BM_PointerChaseVmalloc/mib:1" and b["run_type"] == "iteration"]
    # 1 MiB = 256 pages of 4 KiB: more than the 64-entry L1, within the 2048-entry L2.
    assert all(0.5 < b["model_l1_misses"] <= 1 and b["model_walks"] == 0 for b in chase)
    assert "random frees, eager (vs baseline)" in r.stdout


@pytest.mark.skipif(not os.path.exists(COMPARE_PY), reason="libbenchmark-tools is not installed")
def test_compare_py_reads_two_runs(quick_run, tmp_path):
    _, out = quick_run
    second = tmp_path / "second.json"
    second.write_text(out.read_text())
    r = subprocess.run(["/usr/bin/python3", COMPARE_PY, "--no-color", "benchmarks", str(out), str(second)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "BM_BaselinePair/live:1000/order:2/lazy:0" in r.stdout
    assert "U Test" in r.stdout


@pytest.mark.parametrize("args", [
    ["--repetitions", "0"], ["--repetitions", "1001"], ["--min-time", "0"], ["--min-time", "nan"],
    ["--min-time", "61"], ["--filter", "("], ["--out", "/nonexistent-dir/x.json"], ["--cpu", "-1"],
    ["--cpu", "4096"], ["--repetitions", "many"], ["--repetitions", "1.5"], ["--min-time", "fast"],
    ["--cpu", "x"],
])
def test_out_of_range_options_exit_2_before_building(repo, args):
    # With no PATH, anything past option checking (dpkg-query, meson, ninja) would fail otherwise.
    r = vmfrag(repo, "bench", "--quick", *args, env={"PATH": "/nonexistent"})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmfrag: error: "), r.stderr


# --- bench_results on hand-made reports ---

def report():
    unsupported = {f"perf.{e}": "unsupported: ENOENT" for e in bench_results.PERF_EVENTS}
    unsupported["perf.minor-faults"] = "user+kernel"
    rows = []
    for impl, t in (("BM_VmallocVfreePair", 300.0), ("BM_BaselinePair", 200.0)):
        for rep in range(3):
            rows.append({"name": f"{impl}/live:100000/order:2/lazy:0", "run_name": f"{impl}/live:100000/order:2/lazy:0",
                         "run_type": "iteration", "real_time": 2 * t, "cpu_time": t + rep, "time_unit": "ns", "placement_hash": 7.0,
                         "minor-faults": 0.0})
        for agg in ("mean", "median", "stddev"):
            rows.append({"name": f"{impl}/live:100000/order:2/lazy:0_{agg}",
                         "run_name": f"{impl}/live:100000/order:2/lazy:0", "run_type": "aggregate",
                         "aggregate_name": agg, "real_time": t, "cpu_time": t, "time_unit": "ns"})
    return {"context": unsupported, "benchmarks": rows}


def test_results_accept_a_good_report_and_compute_the_ratio_beside_its_goal():
    doc = report()
    assert bench_results.validate(doc) == []
    assert bench_results.placement_divergences(doc) == []
    [row] = bench_results.summary_rows(doc)
    assert row.measured.startswith("1.50x (301 / 201 ns)")
    assert (row.goal, row.verdict) == ("<= 1.25x", "NOT met")


def test_results_take_interleaved_ratios_from_their_counters():
    doc = report()
    for rep, ratio in enumerate((1.1, 1.3, 1.2)):
        doc["benchmarks"].append({
            "name": "BM_InterleavedVmallocVsBaseline/live:100000/order:1/lazy:0",
            "run_name": "BM_InterleavedVmallocVsBaseline/live:100000/order:1/lazy:0", "run_type": "iteration",
            "real_time": 1e7, "cpu_time": 5e6, "time_unit": "ns", "placement_hash": 9.0, "minor-faults": 0.0,
            "ratio": ratio, "vmfrag_ns": 120.0 + rep, "baseline_ns": 100.0})
    rows = [r for r in bench_results.summary_rows(doc) if "interleaved" in r.config]
    assert [(r.measured, r.goal, r.verdict) for r in rows] == [("1.20x (121 / 100 ns)", "<= 1.25x", "met")]


def add_thread_scaling(doc, backing, ns_by_threads, thread_cache=None):
    for threads, ns in ns_by_threads.items():
        cache = "" if thread_cache is None else f"/thread_cache:{thread_cache}"
        name = f"BM_ThreadScaling/backing:{backing}{cache}/real_time/threads:{threads}"
        for rep in range(3):
            doc["benchmarks"].append({"name": name, "run_name": name, "run_type": "iteration", "threads": threads,
                                      "real_time": ns + rep, "cpu_time": threads * ns, "time_unit": "ns"})


def test_thread_scaling_is_a_real_time_ratio_beside_issue_15s_goal():
    doc = report()
    add_thread_scaling(doc, 0, {1: 100.0, 2: 700.0, 4: 400.0})
    add_thread_scaling(doc, 2, {1: 10000.0, 2: 8000.0})
    rows = [r for r in bench_results.summary_rows(doc) if r.suite == "threads"]
    assert [(r.config, r.measured.split(" (")[0], r.goal, r.verdict) for r in rows] == [
        ("backing none, 2 threads vs 1", "0.14x one thread's ops/s", ">= 1.00x", "NOT met"),
        ("backing none, 4 threads vs 1", "0.25x one thread's ops/s", "-", ""),
        ("backing memfd, 2 threads vs 1", "1.25x one thread's ops/s", ">= 1.00x", "met")]
    ratios = [r for r in bench_results.ratio_definitions(doc) if r["name"].startswith("threads:")]
    assert [(r["numerator"], r["denominator"], r["goal"]) for r in ratios] == [
        ("BM_ThreadScaling/backing:0/real_time/threads:2", "BM_ThreadScaling/backing:0/real_time/threads:1",
         {"max": 1.0}),
        ("BM_ThreadScaling/backing:0/real_time/threads:4", "BM_ThreadScaling/backing:0/real_time/threads:1", None),
        ("BM_ThreadScaling/backing:2/real_time/threads:2", "BM_ThreadScaling/backing:2/real_time/threads:1",
         {"max": 1.0})]
    # The thread-cache variants are rows of their own, named for the cache, each beside its own
    # one-thread run.
    doc = report()
    add_thread_scaling(doc, 0, {1: 100.0, 2: 700.0}, thread_cache=0)
    add_thread_scaling(doc, 0, {1: 30.0, 2: 15.0}, thread_cache=1)
    add_thread_scaling(doc, 0, {1: 180.0, 2: 120.0}, thread_cache=2)
    rows = [r for r in bench_results.summary_rows(doc) if r.suite == "threads"]
    assert [(r.config, r.measured.split(" (")[0], r.verdict) for r in rows] == [
        ("backing none, 2 threads vs 1", "0.14x one thread's ops/s", "NOT met"),
        ("backing none, per-thread caches, 2 threads vs 1", "1.94x one thread's ops/s", "met"),
        ("backing none, small per-thread caches, 2 threads vs 1", "1.50x one thread's ops/s", "met")]
    # Without the one-thread run there is nothing to compare with: no row, no ratio.
    doc = report()
    add_thread_scaling(doc, 0, {2: 700.0})
    assert not [r for r in bench_results.summary_rows(doc) if r.suite == "threads"]


def test_results_reject_a_zero_for_an_unsupported_event():
    doc = report()
    doc["benchmarks"][0]["cycles"] = 0.0
    assert any("cycles" in p and "unsupported" in p for p in bench_results.validate(doc))


def test_results_reject_missing_aggregates_errors_and_context():
    doc = report()
    doc["benchmarks"] = [b for b in doc["benchmarks"] if b.get("aggregate_name") != "median"]
    assert any("no median aggregate" in p for p in bench_results.validate(doc))
    doc = report()
    doc["benchmarks"][1]["error_occurred"] = True
    assert bench_results.validate(doc)
    doc = report()
    del doc["context"]["perf.cycles"]
    assert any("perf.cycles missing" in p for p in bench_results.validate(doc))
    doc = report()
    doc["context"]["perf.cycles"] = "0"
    assert bench_results.validate(doc)


def test_results_catch_differing_placements():
    doc = copy.deepcopy(report())
    doc["benchmarks"][0]["placement_hash"] = 8.0
    [d] = bench_results.placement_divergences(doc)
    assert "live 100000 order 2 lazy 0" in d
