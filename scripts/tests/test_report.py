"""The HTML report (scripts/vmfrag_jobs/report.py, reports/templates/) and its charts
(svg_charts.py): rendered from the recorded fixtures and checked for content, for being
self-contained (no request of any kind), for escaping every string from a result file, for a
half-written directory, for --merge of shards, and the `report` command's exit codes."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from vmfrag_jobs import report, svg_charts
from vmfrag_jobs.results import summary

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HOSTILE = "<script>alert(1)</script>"


def copy_fixture(tmp_path, name, as_name=None):
    dst = tmp_path / (as_name or name)
    shutil.copytree(FIXTURES / name, dst)
    return dst


def render(tmp_path, name):
    d = copy_fixture(tmp_path, name)
    tables, out = report.make_report(d)
    assert out == d / "index.html"
    return tables, out.read_text()


def section(html, sid):
    start = html.index(f'<section id="{sid}"')
    return html[start:html.index("</section>", start)]


def assert_self_contained(html):
    """No resource the browser would fetch: no script, link, image, frame, import or url(); the
    only URL is the SVG namespace, which is a name, not a request."""
    assert not re.search(r"<(script|link|img|iframe|object|embed|audio|video|source)\b", html, re.I)
    assert not re.search(r"\bsrc\s*=|@import|url\(", html, re.I)
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_clean_run_has_every_section_and_its_charts(tmp_path):
    tables, html = render(tmp_path, "ci-clean")
    assert_self_contained(html)
    assert "no bugs found" in html and "No bug in these results." in section(html, "bugs")
    assert "No findings in these results" in section(html, "findings")
    for w in tables["workloads"]:
        assert f"{w['workload']} seed {w['seed']}: bytes over ops" in html
    workloads = section(html, "workloads")
    first_failure_maps = sum(1 for w in tables["workloads"] if w["first_failure"] and w["first_failure"]["segments"])
    assert first_failure_maps == 2
    assert workloads.count("<svg") == 3 * len(tables["charted_workloads"]) + first_failure_maps == 11
    assert "op index" in workloads and ">MiB<" in workloads and "free extents (count)" in workloads
    # Failed ops are marked on each of a workload's three charts.
    assert workloads.count('class="failure-mark"') == 3 * sum(len(w["timeline"]["failures"]) for w in tables["charted_workloads"]) > 0
    hunt = section(html, "hunt")
    assert hunt.count("<svg") == 2 and "theoretical floor 0.205" in hunt and "censored" in hunt
    assert section(html, "fuzzing").count("<svg") == 2
    bench = section(html, "benchmarks")
    assert bench.count('class="bar"') == 2 and "missed" in bench and "met" in bench
    assert "No history" in section(html, "trend")


def test_bugs_come_first_with_their_reproduce_command_and_stack(tmp_path):
    tables, html = render(tmp_path, "ci-bugs")
    assert html.index('id="bugs"') < html.index('id="findings"') < html.index('id="workloads"')
    bugs = section(html, "bugs")
    assert "Bugs (1)" in bugs and "×2" in bugs
    assert "build/asan/fuzz/fuzz_ops_replay bugs/asan-1.vmtrace" in bugs
    assert "#0 0x55d0c1 in vmfrag::FreeTree::erase(unsigned long)" in bugs
    assert 'class="verdict verdict-bugs">1 bug found<' in html


def test_findings_without_perf_counters(tmp_path):
    tables, html = render(tmp_path, "nightly-findings")
    assert_self_contained(html)
    findings = section(html, "findings")
    assert findings.count('class="finding"') == len(tables["findings"]) == 5
    assert findings.count('id="finding-') == 5
    for f in tables["findings"]:
        assert f["replay_command"] in findings
    # Every segment of every map is drawn, to scale; the failed request beside each.
    assert findings.count('class="seg seg-') == sum(len(f["segments"]) for f in tables["findings"])
    assert findings.count('class="request"') == 5
    assert "free pages by buddy order" in findings and "does not apply" in findings
    assert findings.count("<details>") == 5 and "# minimized by vmfrag minimize" in findings
    # Counters that could not be opened read "unsupported: EACCES", never 0.
    bench = section(html, "benchmarks")
    cells = re.findall(r'<td class="unsupported">([^<]*)</td>', bench)
    assert cells and set(cells) == {"unsupported: EACCES"}
    assert "dTLB-load-misses: unsupported: EACCES" in html[:html.index('id="bugs"')]


def test_each_finding_shows_its_kernel_confirmation(tmp_path):
    tables, html = render(tmp_path, "nightly-findings")
    findings = section(html, "findings")
    for i, f in enumerate(tables["findings"], 1):
        article = findings[findings.index(f'id="finding-{i}"'):]
        article = article[:article.index("</article>")]
        assert len(f["confirmations"]) == 2
        for c in f["confirmations"]:
            if c["status"] == "identical":
                assert f"confirmed on Linux {c['release']}" in findings
                assert f"Confirmed on Linux {c['release']}: the kernel's vmalloc placed and failed every one of " \
                       f"the {c['ops_compared']} ops exactly as vmfrag did." in article
            elif c["status"] == "not-confirmable":
                assert f"not confirmable on Linux {c['series']}" in findings
                assert f"Not confirmable on Linux {c['series']}: {c['reason']}".replace("'", "&#39;") in article
            else:
                assert f"differs on Linux {c['release']}: {c['difference']['kind']}" in findings
                assert f"Linux {c['release']} differs at op {c['difference']['op']}" in article
    assert "not run" not in findings  # every fixture finding has a record


def test_a_difference_and_an_error_are_shown_as_such(tmp_path):
    d = copy_fixture(tmp_path, "nightly-findings")
    path = d / "findings" / "checkerboard-4.linux-6.1.json"
    rec = json.loads(path.read_text())
    diff = {"op": 3, "line": 12, "text": "a 2 32K", "kind": "alignment-search", "explanation": "searches for more",
            "vmfrag": {"result": "ok", "offset": 32768}, "kernel": {"result": "virtual-fragmentation"}}
    path.write_text(json.dumps(dict(rec, status="differs", first_difference=diff)))
    err = d / "findings" / "sawtooth-3.linux-6.1.json"
    err.write_text(json.dumps(dict(json.loads(err.read_text()), status="error", first_difference=None,
                                   reason="the module did not load (insmod failed)")))
    for series in ("6.1", "6.12"):
        (d / "findings" / f"checkerboard-3-long.linux-{series}.json").unlink()
    tables, out = report.make_report(d)
    findings = section(out.read_text(), "findings")
    assert "differs on Linux 6.1." in findings and ": alignment-search</span>" in findings
    assert ("differs at op 3 (<code>a 2 32K</code>): vmfrag placed at window offset 0x8000; the kernel failed: "
            "virtual-fragmentation. Difference kind <strong>alignment-search</strong>: searches for more.") in findings
    assert ('<span class="alarm">Kernel confirmation on Linux 6.1 failed (error, not a verdict):</span> '
            "the module did not load (insmod failed)") in findings
    assert "error on Linux 6.1" in findings and "confirmed on Linux" in findings
    assert ">not run</td>" in findings  # checkerboard-3-long has no record now


def test_a_half_written_run_renders_and_says_what_is_missing(tmp_path):
    tables, html = render(tmp_path, "killed-nightly")
    problems = section(html, "problems")
    assert f"Missing or damaged results ({len(tables['problems'])})" in problems
    for needle in ("has no end time", "step &#39;bench&#39; never ran", "fuzz/fuzz_ops.stats.json, which is missing",
                   "findings/sawtooth-9.json: truncated"):
        assert needle in problems
    assert "incomplete" in html[:html.index('id="problems"')]
    assert "timeline cut short" in section(html, "workloads")


def test_strings_from_result_files_are_escaped_everywhere(tmp_path):
    d = copy_fixture(tmp_path, "nightly-findings")
    p = d / "findings" / "sawtooth-3.json"
    p.write_text(json.dumps(dict(json.loads(p.read_text()), id=HOSTILE, target=HOSTILE, signature=HOSTILE)))
    b = copy_fixture(tmp_path, "ci-bugs")
    p = b / "bugs" / "asan-1.json"
    p.write_text(json.dumps(dict(json.loads(p.read_text()), title=HOSTILE, stack=[HOSTILE])))
    p = b / "ci.json"
    doc = json.loads(p.read_text())
    doc["workloads"][0]["workload"] = HOSTILE  # reaches the SVG chart titles
    p.write_text(json.dumps(doc))
    for directory in (d, b):
        report.make_report(directory)
        html = (directory / "index.html").read_text()
        assert "<script" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; seed 1: bytes over ops" in (b / "index.html").read_text()


def test_merge_combines_shards_into_one_report(tmp_path):
    shards = []
    for i in (1, 2):
        s = copy_fixture(tmp_path, "nightly-findings", f"shard{i}")
        run = json.loads((s / "run.json").read_text())
        run.update(run_id=f"nightly-x-{i}", shard={"index": i, "count": 2},
                   started=f"2026-11-30T0{i}:00:00+00:00", finished=f"2026-11-30T0{i + 4}:00:00+00:00")
        (s / "run.json").write_text(json.dumps(run))
        shards.append(s)
    merged = tmp_path / "merged"
    tables, out = report.make_report(merged, merge=shards)
    html = out.read_text()
    assert out == merged / "index.html"
    assert len(tables["findings"]) == 5 and {f["count"] for f in tables["findings"]} == {2, 4}
    assert tables["header"]["duration_seconds"] == 5 * 3600
    assert [s["dir"] for s in tables["header"]["shards"]] == ["shard1", "shard2"]
    assert tables["problems"] == []
    assert 'href="../shard1/findings/' in html


def test_the_report_command_writes_index_html_and_prints_the_summary_last(tmp_path, repo):
    d = copy_fixture(tmp_path, "ci-clean")
    env = dict(os.environ, PYTHONPATH=str(repo / "scripts"))
    cmd = ["/usr/bin/python3", "-m", "vmfrag_jobs.report"]
    r = subprocess.run(cmd + [str(d), "--history", str(tmp_path / "h.sqlite")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"vmfrag report: {d / 'index.html'}"
    assert r.stdout.startswith("vmfrag ci: no bugs found")
    assert (d / "index.html").stat().st_mode & 0o044 == 0o044
    assert (tmp_path / "h.sqlite").exists()
    r = subprocess.run(cmd + [str(tmp_path / "nope")], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "no such results directory" in r.stderr
    r = subprocess.run(cmd + [str(d), "--merge", str(tmp_path / "nope")], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "--merge" in r.stderr


def test_terminal_summary_and_report_show_the_same_figures(tmp_path):
    tables, html = render(tmp_path, "ci-clean")
    text = summary.summary_text(tables)
    for w in tables["workloads"]:
        for figure in (summary.ratio_text(w["external_fragmentation"]), summary.bytes_text(w["peak_live_bytes"])):
            assert figure in text and f"<td>{figure}</td>" in html


def test_terminal_summary_gives_each_findings_kernel_verdict(tmp_path):
    tables, html = render(tmp_path, "nightly-findings")
    text = summary.summary_text(tables)
    confirmed = [c for f in tables["findings"] for c in f["confirmations"] if c["status"] == "identical"]
    assert confirmed
    for c in confirmed:
        assert f"Linux {c['release']}: confirmed (identical over {c['ops_compared']} ops)" in text
    assert "not-confirmable: " in text


def test_nice_ticks_and_byte_ticks():
    assert svg_charts.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg_charts.nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    assert svg_charts.byte_ticks(1 << 20, 8) == [i * (1 << 17) for i in range(9)]
    assert svg_charts.format_bytes(1 << 20) == "1 MiB" and svg_charts.format_bytes(1536) == "1.5 KiB"


def test_charts_have_titles_axis_labels_and_legends():
    svg = svg_charts.line_chart("T<1>", "op index", "MiB", [{"name": "a&b", "points": [(0, 1), (5, 2)]},
                                                           {"name": "c", "points": [(0, 0), (5, 1)]}],
                                markers=[{"x": 3, "label": "op 3: virtual-fragmentation"}])
    assert "<title>T&lt;1&gt;</title>" in svg and ">op index<" in svg and ">MiB<" in svg
    assert 'class="legend"' in svg and ">a&amp;b<" in svg and ">failed ops<" in svg
    assert "no data" in svg_charts.line_chart("E", "x", "y", [{"name": "s", "points": []}])
    strip = svg_charts.address_map("m", [{"offset": 0, "bytes": 4096, "state": "used"},
                                         {"offset": 4096, "bytes": 4096, "state": "guard"},
                                         {"offset": 8192, "bytes": 8192, "state": "free"}], 16384, request_bytes=12288,
                                   largest_free_bytes=8192, width=420)
    widths = [float(w) for w in re.findall(r'class="seg seg-\w+" x="[\d.]+" y="\d+" width="([\d.]+)"', strip)]
    assert widths == [94.0, 94.0, 188.0]  # the strip is 376 px for 16 KiB, to scale
    assert re.search(r'class="request" x="10" y="\d+" width="282.000"', strip)


def test_legacy_ci_report_draws_each_first_failure_map(tmp_path):
    tables, html = render(tmp_path, "legacy-ci")
    doc = json.loads((FIXTURES / "legacy-ci" / "ci.json").read_text())
    with_maps = [w for w in doc["workloads"] if (w.get("first_failure") or {}).get("map")]
    assert with_maps, "the legacy fixture should hold a first failure with its map"
    workloads = section(html, "workloads")
    assert workloads.count('class="request"') == len(with_maps)
    assert workloads.count("<title>sawtooth seed 1: address space at the first failure") == 1
    assert "guard not included" in workloads and "busy runs are drawn with their guard, unsplit" in workloads
    assert "unknown (no run.json)" in html


def test_run_index_axes_have_whole_ticks_and_ratio_bars_name_every_bar():
    svg = svg_charts.line_chart("t", "run", "ns", [{"name": "v", "points": [(0, 1), (1, 2)]}], x_integer=True)
    x_labels = re.findall(r'text-anchor="middle" [^>]*>([^<]*)</text>', svg)
    assert "0" in x_labels and "1" in x_labels and "0.2" not in x_labels
    bars = svg_charts.ratio_bars("r", "ratio", [{"name": "a long ratio name " * 3, "value": 2.0, "goal": 1.25},
                                                {"name": "b", "value": None, "goal": 1.2}])
    assert ">" + "a long ratio name " * 3 + "<" in bars and "not measured" in bars
    assert bars.count('class="bar"') == 1 and 'fill="#d62728"' in bars and bars.count('class="goal"') == 2


def test_merging_runs_of_different_commits_is_flagged(tmp_path):
    shards = []
    for i, commit in ((1, "a" * 40), (2, "b" * 40)):
        s = copy_fixture(tmp_path, "ci-clean", f"shard{i}")
        run = json.loads((s / "run.json").read_text())
        run["run_id"] = f"r{i}"
        run["provenance"]["commit"] = commit
        (s / "run.json").write_text(json.dumps(run))
        shards.append(s)
    tables, out = report.make_report(tmp_path / "merged", merge=shards)
    assert any("different commits" in p and "a" * 40 in p and "b" * 40 in p for p in tables["problems"])
    assert "different commits" in out.read_text()


def test_reliability_figures_show_in_the_report_and_the_summary(tmp_path):
    from vmfrag_jobs import reliability
    from vmfrag_jobs.results.writing import write_result
    figures = [dict(reliability.figure_from_cases(f, []), tried=12, passed=11 if f.name == "misuse-cases" else 12,
                    status="failed" if f.name == "misuse-cases" else "passed") for f in reliability.FIGURES]
    write_result(tmp_path / "reliability.json", reliability.document(figures, {"test": True}))
    from vmfrag_jobs import results as results_layer
    from vmfrag_jobs.results import loading
    tables = results_layer.compute(loading.load([tmp_path]))
    tables.update(trend=[], history_path=None, history_error=None)  # as make_report without a history
    text = summary.summary_text(tables)
    html = report.render(tables)
    assert "reliability misuse-cases (asan): 11/12 failed" in text
    assert "<b>failed</b>" in html and ">misuse-cases<" in html
    fig = {k["name"]: k["value"] for k in tables["key_figures"]}
    assert fig["reliability.misuse-cases.failed"] == 1 and fig["reliability.os-fault-injection.failed"] == 0
