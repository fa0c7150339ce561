"""The fuzzing jobs (fuzz_job.py, hunt_eval.py): the statistics against values computed by hand,
libFuzzer log parsing against a fixture, then tiny real runs (bounded by -runs or one CPU second
per trial) through the fuzz flavour: `fuzz` keeps findings as vmtrace, minimises the best one and
its replay reports the same failure kind; `hunt-eval` records seeds and every arm's trials and
prints the comparison. The real runs are skipped when the fuzz flavour (clang) is not built."""
import json
import math

import pytest

from vmfrag_jobs import fuzz_job, hunt_eval, paths


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
    assert last["execs"] == 4096 and last["corpus"] == 9 and last["exec_per_sec"] == 2048
    assert hunt == [{"best": 0.75, "kind": "virtual-fragmentation", "execs": 2, "ops": 300, "cpu": 0.01}]


@pytest.fixture(scope="module")
def fuzz_build():
    b = paths.build_dir("fuzz") / "fuzz" / "fuzz_frag_hunt"
    if not b.exists():
        pytest.skip("no fuzz flavour build (needs clang)")
    return b


def test_fuzz_job_keeps_findings_and_minimises_the_best(fuzz_build, release_build, tmp_path):
    s = fuzz_job.run("fuzz_frag_hunt", seconds=60, runs=4000, seed=1, out=tmp_path, do_build=False, log=lambda *_: None)
    assert s["exit_code"] == 0 and s["crashes"] == []
    assert s["final_stats"]["number_of_executed_units"] >= 4000
    assert s["findings"], "a run of 4000 inputs found no allocation failure"
    b = s["best_finding"]
    assert b["minimized"] and b["replayed_kind"] == b["kind"], b
    assert json.loads((tmp_path / "stats.json").read_text())["best_severity"] == s["best_severity"]
    # Findings are readable traces whose header is the hunt's config.
    text = (tmp_path / "findings" / s["findings"][0]).read_text()
    assert "\nregion 1M\nguard 1\nlazy 0\n" in text and "# severity " in text


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
    assert "Mann-Whitney" in (tmp_path / "hunt-eval.txt").read_text()
