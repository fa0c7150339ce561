"""The fuzzing jobs (fuzz_job.py, fuzz_records.py, hunt_eval.py): the statistics against values
computed by hand, libFuzzer log and crash-report parsing against fixtures, then tiny real runs
(bounded by -runs or one CPU second per trial) through the fuzz flavour, each loaded by the results
layer with no problem: `fuzz` writes its stats, minimised deduplicated findings (whose replay
reports the same failure kind) and, on the planted bug, one vmfrag-bug; `hunt-eval` records seeds
and every arm's trials and writes vmfrag-hunt-eval. The real runs are skipped when the fuzz flavour
(clang) is not built."""
import json
import math

import pytest

from vmfrag_jobs import fuzz_job, fuzz_records, hunt_eval, paths
from vmfrag_jobs.results import loading, schemas
from vmfrag_jobs.results import tables as report_tables
from vmfrag_jobs.results.writing import RunManifest


def test_wilson_interval_and_a12_by_hand():
    lo, hi = hunt_eval.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert hunt_eval.wilson(0, 10)[0] == 0.0
    assert hunt_eval.a12([0.5, 0.6], [0.7, 0.8]) == 1.0
    assert hunt_eval.a12([0.7, 0.8], [0.5, 0.6]) == 0.0
    assert hunt_eval.a12([0.5, 0.7], [0.7]) == 0.75  # one win, one tie
    assert hunt_eval.median([3, 1, 2, 4]) == 2.5


def trial(arm, i, best, cpu=None, ops=None):
    return {"arm": arm, "trial": i, "seed": i + 1, "best_severity": best, "reached": cpu is not None,
            "cpu_to_threshold": cpu, "ops_to_threshold": ops, "censored": cpu is None, "execs": 100}


def test_statistics_from_fixture_records():
    trials = [trial("features", i, b, c, o) for i, (b, c, o) in
              enumerate([(0.55, 3.0, 300), (0.58, 5.0, 500), (0.65, None, None), (0.5, 1.0, 100)])]
    trials += [trial("blind", i, b) for i, b in enumerate([0.77, 0.8, 0.79, 0.9])]
    s = hunt_eval.statistics(trials, 0.6)
    f, b = s["arms"]["features"], s["arms"]["blind"]
    assert (f["successes"], f["trials"], f["censored"]) == (3, 4, 1)
    assert f["median_cpu_to_threshold"] == 3.0 and f["median_ops_to_threshold"] == 300
    assert f["best"] == 0.5 and b["successes"] == 0
    assert f["underpowered"]
    (c,) = [c for c in s["comparisons"] if (c["a"], c["b"]) == ("features", "blind")]
    assert c["a12"] == 1.0
    assert c["mann_whitney_p"] == pytest.approx(0.0286, abs=1e-3)  # exact two-sided, n = 4 + 4, no overlap
    assert s["floor"] == pytest.approx(math.log(2) / sum(1 / i for i in range(1, 17)))
    text = hunt_eval.table({"trials_per_arm": 4, "cpu_seconds": 1, "statistics": s})
    assert "features vs blind: Mann-Whitney p = 0.0286, A12 = 1.00" in text
    assert "underpowered" in text


def test_libfuzzer_log_parsing():
    log = ("#2\tINITED cov: 40 ft: 50 corp: 3/99b exec/s: 0 rss: 30Mb\n"
           "vmfrag-hunt: best 0.750000 kind virtual-fragmentation execs 2 ops 300 cpu 0.010\n"
           "#4096\tpulse  cov: 41 ft: 77 corp: 9/1kb lim: 40 exec/s: 2048 rss: 31Mb\n"
           "stat::number_of_executed_units: 5000\nstat::average_exec_per_sec:     2500\n")
    stats, last, hunt = fuzz_job.parse_libfuzzer_log(log)
    assert stats == {"number_of_executed_units": 5000, "average_exec_per_sec": 2500}
    assert last["execs"] == 4096 and last["corpus_size"] == 9 and last["exec_per_sec"] == 2048
    assert last["features"] == 77 and last["event"] == "pulse"
    fork = fuzz_records.parse_status("#123456: cov: 41 ft: 77 corp: 9 exec/s 100 oom/timeout/crash: 0/0/1 time: 5s job: 2")
    assert (fork["execs"], fork["features"], fork["corpus_size"], fork["exec_per_sec"]) == (123456, 77, 9, 100)
    assert hunt == [{"best": 0.75, "kind": "virtual-fragmentation", "execs": 2, "ops": 300, "cpu": 0.01}]


@pytest.fixture(scope="module")
def fuzz_build():
    b = paths.build_dir("fuzz") / "fuzz" / "fuzz_frag_hunt"
    if not b.exists():
        pytest.skip("no fuzz flavour build (needs clang)")
    return b


def load_clean(root):
    """Loads a results directory the way the report does; returns it after asserting no problems."""
    results = loading.load([root])
    assert results.problems == [], results.problems
    return results


def in_run(root, step, fn):
    """Runs fn inside a run manifest's step, as the ci and nightly jobs do."""
    run = RunManifest(root, "adhoc", flavour="fuzz", options={}, steps=[step])
    with run.step(step):
        value = fn()
    run.finish(0)
    return value


def test_fuzz_job_writes_findings_and_stats_the_report_loads(fuzz_build, release_build, tmp_path):
    out = tmp_path / "fuzz" / "fuzz_frag_hunt"
    s = in_run(tmp_path, "fuzz", lambda: fuzz_job.run("fuzz_frag_hunt", seconds=60, runs=4000, seed=1, out=out,
                                                      corpus=tmp_path / "work-corpus", do_build=False,
                                                      log=lambda *_: None))
    assert s["exit_code"] == 0 and s["bugs"] == []
    assert s["final_stats"]["number_of_executed_units"] >= 4000
    assert s["findings"], "a run of 4000 inputs found no allocation failure"
    b = s["best_finding"]
    assert b["minimized_ops"] and b["replayed_kind"] == b["kind"], b
    results = load_clean(tmp_path)
    (stats,) = results.of(schemas.FUZZ_STATS)
    assert stats.rel == "fuzz/fuzz_frag_hunt/fuzz_frag_hunt.stats.json"
    assert stats.data["execs"] >= 4000 and stats.data["findings"] == len(s["findings"]) and stats.data["history"]
    found = results.of(schemas.FINDING)
    assert sorted(f.data["id"] for f in found) == sorted(s["findings"])
    assert len({f.data["signature"] for f in found}) == len(found)  # deduplicated
    best = min(found, key=lambda f: f.data["severity"])
    assert best.data["severity"] <= s["best_severity"] and best.data["floor"]["applies"]
    assert best.data["map"] and best.data["ops_after_minimisation"] <= best.data["ops_before_minimisation"]
    # The minimised trace is a readable trace whose replay fails with the finding's kind at its last op.
    text = (tmp_path / "fuzz/fuzz_frag_hunt/findings" / best.data["trace"]).read_text()
    assert "\nguard 1\nlazy 0\n" in text and "# severity " in text
    tables = report_tables.compute(results)
    assert {f["id"] for f in tables["findings"]} == set(s["findings"])
    assert [z["target"] for z in tables["fuzz"]] == ["fuzz_frag_hunt"]


def test_phys_hunt_writes_physical_findings_the_report_shows(fuzz_build, release_build, tmp_path):
    """fuzz_phys_hunt (kmalloc/kfree on the buddy allocator): a short real run writes
    physical-fragmentation findings, minimised, replaying to the same kind, with the buddy
    allocator's free blocks per order as the report's physical map."""
    if not (paths.build_dir("fuzz") / "fuzz" / "fuzz_phys_hunt").exists():
        pytest.skip("fuzz_phys_hunt not built")
    out = tmp_path / "fuzz" / "fuzz_phys_hunt"
    s = in_run(tmp_path, "fuzz", lambda: fuzz_job.run("fuzz_phys_hunt", seconds=60, runs=3000, seed=1, out=out,
                                                      corpus=tmp_path / "work-corpus", do_build=False,
                                                      log=lambda *_: None))
    assert s["exit_code"] == 0 and s["bugs"] == [] and s["findings"], s
    b = s["best_finding"]
    assert b["kind"] == "physical-fragmentation" and b["replayed_kind"] == b["kind"], b
    results = load_clean(tmp_path)
    found = {f.data["id"]: f.data for f in results.of(schemas.FINDING)}
    best = found[b["id"]]
    assert 0 < best["severity"] <= 1 and best["floor"]["applies"] is False
    phys = best["physical_map"]
    assert phys["total_pages"] == 256 and len(phys["free_blocks_by_order"]) == 11
    free = sum(n << o for o, n in enumerate(phys["free_blocks_by_order"]))
    # physical-fragmentation: enough free pages for the block, but no free block of its order or above
    assert free >= 1 << phys["failed_order"] and not any(phys["free_blocks_by_order"][phys["failed_order"]:])
    text = (out / "findings" / best["trace"]).read_text()
    assert "\nphys 1M\n" in text and "\nk " in text and "physical memory 256 pages" in text
    tables = report_tables.compute(results)
    assert {f["id"] for f in tables["findings"]} == set(s["findings"])
    (row,) = [f for f in tables["findings"] if f["id"] == b["id"]]
    assert row["physical_map"]["free_blocks_by_order"] == phys["free_blocks_by_order"]


def test_fuzz_job_writes_each_distinct_crash_as_a_bug(fuzz_build, release_build, tmp_path):
    planted = paths.build_dir("fuzz") / "fuzz" / "fuzz_ops_planted"
    if not planted.exists():
        pytest.skip("fuzz_ops_planted not built (-Dplanted_bug_test=false)")
    out = tmp_path / "fuzz" / "fuzz_ops_planted"
    s = in_run(tmp_path, "fuzz", lambda: fuzz_job.run("fuzz_ops_planted", seconds=120, runs=200000, seed=1, out=out,
                                                      do_build=False, log=lambda *_: None))
    assert s["exit_code"] != 0 and len(s["bugs"]) == 1, s
    results = load_clean(tmp_path)
    (bug,) = results.of(schemas.BUG)
    d = bug.data
    assert d["kind"] in ("divergence", "invariant-violation") and d["title"].startswith("fuzz_ops: op "), d
    assert d["stack"] and "LLVMFuzzerTestOneInput" in " ".join(d["stack"]), d["stack"]
    assert not any("__sanitizer" in f or "fuzzer::" in f for f in d["stack"][:3])
    assert (out / "bugs" / d["reproducer"]).read_text().startswith("# decoded from ")
    assert d["command"].startswith("build/fuzz/fuzz/fuzz_ops_planted ")
    (stats,) = results.of(schemas.FUZZ_STATS)
    assert stats.data["bugs"] == 1
    assert [b["title"] for b in report_tables.compute(results)["bugs"]] == [d["title"]]


def test_crash_reports_are_classified_and_deduplicated():
    asan = ("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020\n"
            "    #0 0x55d0c1 in vmfrag::FreeTree::erase(unsigned long) allocator/ds/free_tree.cpp:212:9\n"
            "    #1 0x55d0c2 in LLVMFuzzerTestOneInput fuzz/fuzz_ops.cpp:61:7\n\n"
            "    #0 0x1 in other_stack x.cpp:1\n")
    check = ("fuzz/fuzz_ops.cpp:16: vmfrag check failed: r.ok(): fuzz_ops: op 8: stats: allocator free 1 reference 2\n"
             "==2== ERROR: libFuzzer: deadly signal\n"
             "    #0 0x1 in __sanitizer_print_stack_trace x:1\n    #1 0x2 in fuzzer::PrintStackTrace() x:2\n"
             "    #2 0x3 in abort x:3\n    #3 0x4 in vmfrag::detail::check_failed(char const*) a.h:13\n"
             "    #4 0x5 in LLVMFuzzerTestOneInput fuzz/fuzz_ops.cpp:16:3\n")
    assert fuzz_records.classify(asan) == ("sanitizer", "heap-use-after-free in FreeTree::erase")
    assert fuzz_records.stack_frames(asan)[1].endswith("fuzz/fuzz_ops.cpp:61:7")
    assert len(fuzz_records.stack_frames(asan)) == 2  # the first stack only
    assert fuzz_records.classify(check) == ("divergence", "fuzz_ops: op 8: stats: allocator free 1 reference 2")
    assert fuzz_records.stack_frames(check) == ["#4 0x5 in LLVMFuzzerTestOneInput fuzz/fuzz_ops.cpp:16:3"]
    assert fuzz_records.classify(check.replace("stats: allocator", "check(): tree"))[0] == "invariant-violation"
    assert fuzz_records.classify("==3== ERROR: libFuzzer: timeout after 25 seconds\n")[0] == "timeout"
    assert fuzz_records.classify("==3== ERROR: libFuzzer: out-of-memory (used: 3000Mb; exceeds: 2560Mb)\n")[0] == "oom"
    # The same top frames at other addresses and ops: one bug.
    a = fuzz_records.bug_record("fuzz_ops", check, None, None, None, {})
    b = fuzz_records.bug_record("fuzz_ops", check.replace("op 8", "op 9").replace("0x5", "0x9"), None, None, None, {})
    assert a["id"] == b["id"] and a["signature"] == b["signature"]
    logged = fuzz_records.crash_reports("x\n" + check + "artifact_prefix='c/'; Test unit written to c/crash-1\nafter\n")
    assert list(logged) == ["c/crash-1"] and "deadly signal" in logged["c/crash-1"]


def test_hunt_eval_tiny_budget(fuzz_build, tmp_path):
    r = hunt_eval.run(trials=2, cpu_seconds=1, out=tmp_path, parallel=2, do_build=False, log=lambda *_: None)
    assert {t["arm"] for t in r["trials"]} == set(hunt_eval.ARMS)
    assert sorted((t["arm"], t["seed"]) for t in r["trials"]) == sorted((a, s) for a in hunt_eval.ARMS for s in (1, 2))
    for t in r["trials"]:
        assert t["best_severity"] is not None and 0 < t["best_severity"] <= 1.1, t
        assert t["execs"] > 0
    assert all(t["exit"] == 0 for t in r["trials"] if t["arm"] == "blind")  # stopped itself, summary printed
    feats = [t for t in r["trials"] if t["arm"] == "features"]
    assert all(t["corpus_size"] > 0 and t["share_owed_to_features"] is not None for t in feats)
    j = json.loads((tmp_path / "hunt-eval.json").read_text())
    assert j["statistics"]["arms"]["blind"]["trials"] == 2
    (ev,) = loading.load([tmp_path]).of(schemas.HUNT_EVAL)
    assert [p for p in ev.problems] == []
    assert [a["name"] for a in ev.data["arms"]] == list(hunt_eval.ARMS)
    assert all(len(a["trials"]) == 2 for a in ev.data["arms"])
    assert "Mann-Whitney" in (tmp_path / "hunt-eval.txt").read_text()
