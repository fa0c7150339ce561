"""The results layer (scripts/vmfrag_jobs/results/): loading and validating every result format,
legacy versions, damaged files from a killed job, and the tables the report and the terminal
summary share, checked against the recorded fixtures in scripts/tests/fixtures/ (made by
fixtures/make_fixtures.py from the release binary) and against the raw files they came from."""
import json
import math
import shutil
from pathlib import Path

import pytest

from vmfrag_jobs import results
from vmfrag_jobs.results import loading, schemas, statistics, summary, tables, timeline

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(name):
    return results.load([FIXTURES / name])


def copy_fixture(tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    return dst


def test_every_fixture_file_is_identified_and_valid():
    expected = {
        "ci-bugs": {schemas.RUN: 1, schemas.CI: 1, schemas.REPLAY: 2, schemas.TIMELINE: 2, schemas.BUG: 2},
        "ci-clean": {schemas.RUN: 1, schemas.CI: 1, schemas.REPLAY: 3, schemas.TIMELINE: 3, schemas.FUZZ_STATS: 2,
                     schemas.HUNT_EVAL: 1, schemas.GOOGLE_BENCHMARK: 1, schemas.BENCH_RATIOS: 1},
        "nightly-findings": {schemas.RUN: 1, schemas.FINDING: 6, schemas.CONFIRMATION: 12, schemas.GOOGLE_BENCHMARK: 1},
        "legacy-ci": {schemas.CI: 1},
    }
    for name, counts in expected.items():
        r = load(name)
        got = {}
        for f in r.files:
            got[f.format] = got.get(f.format, 0) + 1
        assert got == counts, name
        problems = [p for f in r.files for p in f.problems]
        assert problems == [], (name, problems)


def test_replay_json_from_the_binary_is_version_1_and_without_format_is_legacy(tmp_path):
    src = FIXTURES / "ci-clean" / "workloads" / "checkerboard-seed1.replay.json"
    doc = json.loads(src.read_text())
    assert (doc["format"], doc["version"]) == ("vmfrag-replay", 1)
    del doc["format"], doc["version"]
    (tmp_path / "old.replay.json").write_text(json.dumps(doc))
    rf = loading.load_json_file(tmp_path, "old.replay.json")
    assert (rf.format, rf.version, rf.problems) == (schemas.REPLAY, schemas.LEGACY, [])
    assert "legacy version 0" in rf.notes[0]


def test_legacy_ci_json_as_the_ci_job_writes_it_loads_as_version_0():
    r = load("legacy-ci")
    (ci,) = r.of(schemas.CI)
    assert ci.legacy
    t = results.compute(r)
    assert t["header"]["job"] == "ci"
    assert [w["workload"] for w in t["workloads"]] == ["fix_align_alloc_test", "sawtooth"]
    saw = next(w for w in t["workloads"] if w["workload"] == "sawtooth")
    rec = next(x for x in json.loads((FIXTURES / "legacy-ci" / "ci.json").read_text())["workloads"] if x["workload"] == "sawtooth")
    assert saw["failures_by_kind"] == rec["failures_by_kind"] and saw["ops"] == rec["ops"]
    assert saw["timeline"] is None and "legacy ci.json keeps none" in saw["timeline_note"]
    assert any("no run.json" in p for p in t["problems"])


def test_a_newer_version_is_refused_not_guessed(tmp_path):
    doc = json.loads((FIXTURES / "ci-clean" / "hunt-eval.json").read_text())
    doc["version"] = 2
    (tmp_path / "hunt-eval.json").write_text(json.dumps(doc))
    rf = loading.load_json_file(tmp_path, "hunt-eval.json")
    assert rf.data is None
    assert "newer than this reader" in rf.problems[0]


def test_validation_names_missing_fields_and_wrong_types():
    doc = json.loads((FIXTURES / "nightly-findings" / "findings" / "sawtooth-3.json").read_text())
    doc.pop("severity")
    doc["region_bytes"] = True  # a boolean is not an integer
    doc["kind"] = "exhaustion"
    doc["map"][0][2] = "taken"
    problems = schemas.validate(schemas.FINDING, 1, doc, "f.json")
    assert "f.json: missing field 'severity'" in problems
    assert "f.json: 'region_bytes' should be integer, got boolean" in problems
    assert any("'kind' is 'exhaustion'" in p for p in problems)
    assert any("map run 0 is not [offset, bytes, free|busy|lazy]" in p for p in problems)
    doc = json.loads((FIXTURES / "ci-clean" / "fuzz" / "fuzz_ops.stats.json").read_text())
    doc.pop("provenance")
    assert schemas.validate(schemas.FUZZ_STATS, 1, doc, "s") == [
        "s: missing field 'provenance' (commit, flavour, options, machine)"]


def test_a_half_written_directory_loads_and_says_what_is_missing():
    r = load("killed-nightly")
    t = results.compute(r)
    problems = "\n".join(t["problems"])
    assert "has no end time" in problems
    assert "step 'fuzz' was still running" in problems
    assert "step 'fuzz' lists fuzz/fuzz_ops.stats.json, which is missing" in problems
    assert "step 'bench' never ran" in problems
    assert "findings/sawtooth-9.json: truncated" in problems and "vmfrag-finding" in problems
    assert "fuzz/fuzz_frag_hunt.stats.json: truncated" in problems
    assert t["header"]["verdict"] == {"status": "incomplete", "incomplete": True,
                                      "text": "no bugs found in what was written (the run is incomplete)"}
    # The cut timeline keeps every complete line.
    (tl,) = r.of(schemas.TIMELINE)
    raw = (FIXTURES / "killed-nightly" / tl.rel).read_bytes()
    assert not raw.endswith(b"\n")
    assert tl.damaged and tl.data["ops"] == raw.count(b"\n")
    (w,) = t["workloads"]
    assert w["timeline"]["ops"] == raw.count(b"\n")
    assert "cut short" in w["timeline_note"]


def test_workload_rows_carry_the_replay_json_numbers_and_timeline_extremes():
    t = results.compute(load("ci-clean"))
    for w in t["workloads"]:
        stem = f"{w['workload']}-seed{w['seed']}"
        replay = json.loads((FIXTURES / "ci-clean" / "workloads" / f"{stem}.replay.json").read_text())
        assert w["ops"] == replay["ops"]
        assert w["failures_by_kind"] == replay["failures_by_kind"]
        assert w["peak_live_bytes"] == replay["peak_live_bytes"]
        assert w["external_fragmentation"] == replay["final"]["external_fragmentation"]
        lines = [json.loads(x) for x in (FIXTURES / "ci-clean" / "workloads" / f"{stem}.timeline.jsonl").read_text().splitlines()]
        series = w["timeline"]["series"]
        assert max(v for _, v in series["live_bytes"]) == max(x["live_bytes"] for x in lines) == replay["peak_live_bytes"]
        assert min(v for _, v in series["largest_free_bytes"]) == min(x["largest_free_bytes"] for x in lines)
        assert len(series["live_bytes"]) <= 4 * timeline.DEFAULT_POINTS
        failed = [x["op"] for x in lines if x["result"] != "ok"]
        assert w["timeline"]["failed_ops"] == len(failed) == len(replay["failures"])
        assert sum(f["count"] for f in w["timeline"]["failures"]) == len(failed)
        assert {f["op"] for f in w["timeline"]["failures"]} <= set(failed)


def test_timeline_envelope_thins_while_streaming_but_keeps_peaks_dips_and_failures():
    for n in (1, 99, 100, 101, 2000, 12345):
        env = timeline.Envelope(points=50)
        for i in range(n):
            env.add({"op": i, "result": "no-virtual-space" if i in (7, 8, 1500) else "ok",
                     "live_bytes": 1000 if i == n * 2 // 3 else i % 7, "free_bytes": n - i,
                     "largest_free_bytes": 0, "free_extents": 0 if i == n // 2 else 5, "external_fragmentation": 0.5})
            assert len(env.buckets) <= 100
        s = tables.timeline_series(env)
        assert s["ops"] == n and (s["first_op"], s["last_op"]) == (0, n - 1)
        assert (n * 2 // 3, 1000) in s["series"]["live_bytes"]
        assert (n // 2, 0) in s["series"]["free_extents"]
        assert s["series"]["free_bytes"][0] == (0, n) and s["series"]["free_bytes"][-1] == (n - 1, 1)
        assert sum(b[1] for b in env.buckets) == n
        if n > 50:
            assert len(env.buckets) >= 50
        failed = [i for i in (7, 8, 1500) if i < n]
        assert s["failed_ops"] == len(failed) == sum(f["count"] for f in s["failures"])
        assert s["failures"][0]["op"] == failed[0] if failed else s["failures"] == []
        assert all(f["kinds"] == ["no-virtual-space"] for f in s["failures"])


def test_address_segments_split_each_busy_run_into_area_and_guard():
    segs = tables.address_segments([[0, 12288, "busy"], [12288, 8192, "free"], [20480, 8192, "lazy"]], 1)
    assert segs == [{"offset": 0, "bytes": 8192, "state": "used"}, {"offset": 8192, "bytes": 4096, "state": "guard"},
                    {"offset": 12288, "bytes": 8192, "state": "free"}, {"offset": 20480, "bytes": 8192, "state": "lazy"}]
    assert tables.address_segments([[0, 4096, "busy"]], 0) == [{"offset": 0, "bytes": 4096, "state": "used"}]


def test_bugs_are_deduplicated_by_their_stated_signature():
    t = results.compute(load("ci-bugs"))
    (bug,) = t["bugs"]
    assert bug["count"] == 2
    assert bug["signature"] == ("sanitizer | vmfrag::FreeTree::erase(unsigned long) < "
                                "vmfrag::VirtualSpace::release(unsigned long) < vmfrag::Vmalloc::vfree(void*)")
    assert bug["command"] == "build/asan/fuzz/fuzz_ops_replay bugs/asan-1.vmtrace"
    assert bug["stack_top"][0].startswith("#0 ")
    assert t["header"]["verdict"]["status"] == "bugs"


def test_divergence_in_a_replay_is_a_bug_with_its_reproduce_command(tmp_path):
    d = copy_fixture(tmp_path, "ci-clean")
    p = d / "workloads" / "checkerboard-seed1.replay.json"
    doc = json.loads(p.read_text())
    doc["divergence"] = {"op": 17, "line": 25, "allocator": "placed at 0x3000", "reference": "placed at 0x5000"}
    p.write_text(json.dumps(doc))
    t = results.compute(results.load([d]))
    (bug,) = t["bugs"]
    assert bug["kind"] == "divergence"
    assert bug["command"] == "scripts/vmfrag replay workloads/checkerboard-seed1.vmtrace --json --differential"
    assert bug["signature"] == "divergence | allocator: placed at 0xN; reference: placed at 0xN"
    assert next(w for w in t["workloads"] if w["workload"] == "checkerboard")["status"] == "ok"  # as ci.json says


def test_findings_are_deduplicated_keeping_the_most_severe(tmp_path):
    t = results.compute(load("nightly-findings"))
    rows = t["findings"]
    assert len(rows) == 5
    sidecars = {n: json.loads((FIXTURES / "nightly-findings" / "findings" / f"{n}.json").read_text())
                for n in ("checkerboard-3", "checkerboard-3-long", "checkerboard-4")}
    assert sidecars["checkerboard-3"]["signature"] == sidecars["checkerboard-3-long"]["signature"]
    assert sidecars["checkerboard-3"]["signature"] != sidecars["checkerboard-4"]["signature"]
    (cb,) = [f for f in rows if f["signature"] == sidecars["checkerboard-3"]["signature"]]
    assert cb["count"] == 2 and cb["id"] == "checkerboard-3-long"  # equal severity: the first loaded stays
    assert sorted(cb["sources"]) == ["findings/checkerboard-3-long.json", "findings/checkerboard-3.json"]
    # A more severe duplicate becomes the representative.
    d = copy_fixture(tmp_path, "nightly-findings")
    p = d / "findings" / "checkerboard-3.json"
    p.write_text(json.dumps(dict(sidecars["checkerboard-3"], severity=sidecars["checkerboard-3"]["severity"] - 0.1)))
    (cb,) = [f for f in results.compute(results.load([d]))["findings"] if f["signature"] == sidecars["checkerboard-3"]["signature"]]
    assert cb["id"] == "checkerboard-3" and cb["count"] == 2
    assert [f["severity"] for f in rows] == sorted(f["severity"] for f in rows)
    phys = next(f for f in rows if f["kind"] == "physical-fragmentation")
    assert phys["physical_map"]["free_blocks_by_order"][:2] == [2, 0]
    assert phys["floor_applies"] is False and phys["distance_to_floor"] is None
    for f in rows:
        side = json.loads((FIXTURES / "nightly-findings" / "findings" / f"{f['id']}.json").read_text())
        assert f["ops_before"] == side["ops_before_minimisation"] and f["ops_after"] == side["ops_after_minimisation"]
        assert f["trace_text"].splitlines()[0].startswith("# minimized by vmfrag minimize")
        assert sum(s["bytes"] for s in f["segments"]) == side["region_bytes"]


def test_kernel_confirmations_attach_to_their_findings():
    """The fixture's records come from real boots of Linux 6.1 and 6.12 (make_fixtures.py): every
    finding has one per kernel; the kmalloc one is not confirmable, the others carry the release."""
    t = results.compute(load("nightly-findings"))
    for f in t["findings"]:
        assert [c["series"] for c in f["confirmations"]] == ["6.1", "6.12"]
        for c in f["confirmations"]:
            rec = json.loads((FIXTURES / "nightly-findings" / c["source"]).read_text())
            assert c["source"] == f"findings/{f['id']}.linux-{c['series']}.json" and rec["finding"] == f["id"]
            assert (c["status"], c["reason"], c["difference"]) == \
                (rec["status"], rec["reason"], rec["first_difference"])
            if f["kind"] == "physical-fragmentation":
                assert c["status"] == "not-confirmable" and "op 'k' (kmalloc)" in c["reason"] and c["release"] is None
            else:
                assert c["status"] in ("identical", "differs") and c["release"].startswith(c["series"] + ".")
                assert rec["ops_compared"] >= 1 and rec["kernel_replay"]["kernel"]["release"] == c["release"]


def test_a_confirmation_without_its_finding_or_that_could_not_run_is_a_problem(tmp_path):
    d = copy_fixture(tmp_path, "nightly-findings")
    (d / "findings" / "sawtooth-3.json").unlink()
    rec = json.loads((d / "findings" / "checkerboard-4.linux-6.1.json").read_text())
    rec.update(status="differs", first_difference=None)
    (d / "findings" / "checkerboard-4.linux-6.1.json").write_text(json.dumps(rec))
    other = json.loads((d / "findings" / "checkerboard-4.linux-6.12.json").read_text())
    other.update(status="error", reason="the module did not load (insmod failed); the console ends with:\n  | x")
    (d / "findings" / "checkerboard-4.linux-6.12.json").write_text(json.dumps(other))
    r = results.load([d])
    assert (f"{d.name}/findings/sawtooth-3.linux-6.1.json: a kernel confirmation of finding sawtooth-3, "
            "whose sidecar is not beside it (missing or damaged)") in r.problems
    assert (f"{d.name}/findings/checkerboard-4.linux-6.12.json: the kernel confirmation on Linux 6.12 could not "
            "run: the module did not load (insmod failed); the console ends with:") in r.problems
    assert f"{d.name}/findings/checkerboard-4.linux-6.1.json: status 'differs' without its first_difference" \
        in r.problems
    assert all(f["id"] != "sawtooth-3" for f in results.compute(r)["findings"])


def test_a_finding_below_the_floor_is_reported_as_a_bug(tmp_path):
    d = copy_fixture(tmp_path, "nightly-findings")
    p = d / "findings" / "checkerboard-4.json"
    doc = json.loads(p.read_text())
    assert doc["floor"]["applies"] and doc["severity"] > doc["floor"]["value"]
    assert results.compute(results.load([d]))["bugs"] == []
    doc["severity"] = doc["floor"]["value"] - 0.01
    p.write_text(json.dumps(doc))
    t = results.compute(results.load([d]))
    (bug,) = t["bugs"]
    assert bug["signature"].startswith("below-floor | ") and "below the floor" in bug["title"]


def test_unsupported_counters_are_shown_as_such_never_as_zero():
    t = results.compute(load("nightly-findings"))
    bench = t["bench"]
    assert bench["unsupported"]["page-faults"] == "unsupported: EACCES"
    for row in bench["rows"]:
        cells = {c["name"]: c for c in row["cells"]}
        assert cells["page-faults"]["value"] is None and cells["page-faults"]["text"] == "unsupported: EACCES"
        assert cells["modelled_dtlb_misses"]["text"] is None and cells["modelled_dtlb_misses"]["value"] is not None
    counters = {c["name"]: c for c in t["header"]["perf_counters"]}
    assert counters["dTLB-load-misses"] == {"name": "dTLB-load-misses", "status": "unsupported: EACCES", "available": False}


def test_bench_ratios_come_from_the_median_rows_and_meet_or_miss_their_goal():
    t = results.compute(load("ci-clean"))
    bench = t["bench"]
    assert bench["statistic"] == "median of repetitions"
    doc = json.loads((FIXTURES / "ci-clean" / "bench.json").read_text())
    med = {b["run_name"]: b["real_time"] for b in doc["benchmarks"] if b.get("aggregate_name") == "median"}
    r = {x["name"]: x for x in bench["ratios"]}
    first = r["address-space op vs baseline (100k live, random frees)"]
    assert first["ratio"] == pytest.approx(med["BM_VmallocVfree/live:100000/order:random"] / med["BM_BaselineFit/live:100000/order:random"])
    assert first["met"] is (first["ratio"] <= 1.25)


def test_hunt_statistics_are_computed_from_the_trials():
    t = results.compute(load("ci-clean"))
    h = t["hunt"]
    doc = json.loads((FIXTURES / "ci-clean" / "hunt-eval.json").read_text())
    for arm, raw in zip(h["arms"], doc["arms"]):
        reached = [x for x in raw["trials"] if x["seconds_to_threshold"] is not None]
        assert arm["successes"] == len(reached) and arm["censored"] == len(raw["trials"]) - len(reached)
        assert arm["best"] == min(x["best_severity"] for x in raw["trials"])
        assert arm["ci_low"] <= arm["success_rate"] <= arm["ci_high"]
        assert arm["median_seconds_to_threshold"] == statistics.median([x["seconds_to_threshold"] for x in reached])
    assert h["floor"] == pytest.approx(math.log(2) / sum(1 / i for i in range(1, 17)))
    assert [c["b"] for c in h["comparisons"]] == ["coverage-only", "blind-gen"]


def test_statistics_against_known_values():
    low, high = statistics.wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert statistics.wilson_interval(0, 10)[0] == 0.0
    assert statistics.wilson_interval(0, 0) == (None, None)
    # Completely separated samples of 10: U = 0, z = (50 - 0.5) / sqrt(175) (scipy asymptotic: 1.8267e-4).
    u, p = statistics.mann_whitney_u(list(range(10)), list(range(10, 20)))
    assert u == 0 and p == pytest.approx(1.8267e-4, rel=1e-3)
    # Ties: [1, 2, 2] vs [2, 3]: ranks 1, 3, 3 | 3, 5 -> U1 = 7 - 6 = 1.
    assert statistics.mann_whitney_u([1, 2, 2], [2, 3])[0] == 1
    assert statistics.mann_whitney_u([1, 1], [1, 1])[1] is None
    assert statistics.vargha_delaney_a12([1, 2], [3, 4]) == 1.0
    assert statistics.vargha_delaney_a12([1, 3], [3, 1]) == 0.5
    assert statistics.median([3, 1, 2, 10]) == 2.5


def test_the_summary_prints_the_numbers_of_the_tables():
    t = results.compute(load("ci-clean"))
    text = summary.summary_text(t)
    for w in t["workloads"]:
        assert f"ext. frag {summary.ratio_text(w['external_fragmentation'])}" in text
        assert f"peak live {summary.bytes_text(w['peak_live_bytes'])}" in text
    for a in t["hunt"]["arms"]:
        assert f"in {a['successes']}/{a['trials']}" in text


def test_key_figures_for_the_history():
    t = results.compute(load("ci-clean"))
    figs = {f["name"]: f for f in t["key_figures"]}
    assert figs["bugs"]["value"] == 0 and figs["bugs"]["better"] == "lower"
    assert figs["workload_failures"]["value"] == sum(sum(w["failures_by_kind"].values()) for w in t["workloads"])
    assert figs["fuzz.fuzz_ops.execs_per_second"]["value"] == 3000
    assert figs["hunt.state-features.success_rate"]["better"] == "higher"


def test_bad_timeline_lines_are_skipped_and_named(tmp_path):
    src = (FIXTURES / "ci-clean" / "workloads" / "checkerboard-seed1.timeline.jsonl").read_text().splitlines()
    assert len(src) > 200
    bad_type = json.loads(src[150])
    bad_type["live_bytes"] = "many"
    missing = json.loads(src[151])
    del missing["free_extents"]
    lines = src[:5] + ["{not json"] + src[5:150] + [json.dumps(bad_type), json.dumps(missing)] + src[152:]
    (tmp_path / "t.timeline.jsonl").write_text("\n".join(lines) + "\n")
    rf = loading.load_timeline_file(tmp_path, "t.timeline.jsonl")
    assert not rf.damaged and rf.data["ops"] == len(src) - 2
    assert rf.problems == ["t.timeline.jsonl:6: not a JSON object; line skipped",
                           "t.timeline.jsonl:152: a field has the wrong type; line skipped",
                           "t.timeline.jsonl:153: not a timeline record (fields missing); line skipped"]


def test_a_run_manifest_written_step_by_step_loads_at_every_stage(tmp_path):
    from vmfrag_jobs.results import writing
    out = tmp_path / "run"
    run = writing.RunManifest(out, "nightly", flavour="release", options={"hours": 1}, shard=(2, 3),
                              steps=("workloads", "fuzz", "bench"))
    t = results.compute(results.load([out]))
    assert "step 'fuzz' never ran: no results for it" in "\n".join(t["problems"])
    with run.step("workloads") as step:
        shutil.copytree(FIXTURES / "ci-clean" / "workloads", out / "workloads")
        step.outputs.append("workloads/checkerboard-seed1.replay.json")
        mid = results.compute(results.load([out]))
        assert "run: step 'workloads' was still running: its results are partial" in mid["problems"]
    with pytest.raises(RuntimeError):
        with run.step("fuzz"):
            raise RuntimeError("libFuzzer exited 1")
    run.skip("bench", "no benchmark build")
    run.finish(exit_code=1)
    doc = json.loads((out / "run.json").read_text())
    assert [s["status"] for s in doc["steps"]] == ["done", "failed", "skipped"]
    assert doc["shard"] == {"index": 2, "count": 3} and doc["exit_code"] == 1 and doc["finished"]
    t = results.compute(results.load([out]))
    assert not any("no end time" in p or "never ran" in p or "still running" in p for p in t["problems"])
    assert t["header"]["job"] == "nightly" and t["header"]["duration_seconds"] is not None
    assert len(t["workloads"]) == 3
    assert list(out.glob(".*.tmp")) == []


def test_write_result_refuses_an_invalid_document(tmp_path):
    from vmfrag_jobs.results import writing
    doc = json.loads((FIXTURES / "ci-clean" / "fuzz" / "fuzz_ops.stats.json").read_text())
    del doc["execs"]
    with pytest.raises(writing.InvalidResult, match="missing field 'execs'"):
        writing.write_result(tmp_path / "s.json", doc)
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(writing.InvalidResult, match="no 'format'"):
        writing.write_result(tmp_path / "s.json", {"execs": 1})


def test_the_recorded_replay_fixtures_are_what_the_release_binary_writes(release_build, tmp_path):
    """The replay JSON and timelines here were recorded from the release binary; replaying their
    traces now must give them back byte for byte. When this fails after a change to replay's
    output, regenerate the fixtures (scripts/tests/fixtures/make_fixtures.py) and check the
    results layer still reads the new output."""
    import subprocess
    cli = release_build / "harness" / "cli" / "vmfrag"
    d = FIXTURES / "ci-clean"
    for replay in sorted((d / "workloads").glob("*.replay.json")):
        stem = replay.name[: -len(".replay.json")]
        timeline = tmp_path / f"{stem}.timeline.jsonl"
        r = subprocess.run([str(cli), "replay", f"workloads/{stem}.vmtrace", "--json", "--maps", "1",
                            "--timeline", str(timeline), "--differential"], cwd=d, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout == replay.read_text(), f"{replay.name} differs from today's replay output"
        assert timeline.read_bytes() == (d / "workloads" / f"{stem}.timeline.jsonl").read_bytes()
