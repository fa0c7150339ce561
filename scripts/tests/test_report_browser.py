"""The report as a person opens it: headless Chromium (Debian's `chromium`, installed by the
bootstrap when this test runs) loads reports rendered from the fixtures over the DevTools pipe and
the test checks there is no console error, no network request, and that the charts and maps are
present with visible geometry; a screenshot of each page is kept in pytest's tmp dir. A control
page with a remote image and a console error proves the checks can fail.

Skipped, with the reason, only when Chromium cannot be installed."""
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from vmfrag_jobs import bootstrap, report

import chromium_cdp

FIXTURES = Path(__file__).resolve().parent / "fixtures"

CHART_GEOMETRY = """
(() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('polyline.series, rect.seg, circle.dot, rect.bar, rect.request')]
      .filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; });
    return {section: svg.closest('section') ? svg.closest('section').id : null,
            title: svg.querySelector('title').textContent, width: box.width, height: box.height,
            marks: marks.length};
  });
  return {charts, scripts: document.querySelectorAll('script').length,
          text: document.body.innerText};
})()
"""


@pytest.fixture(scope="module")
def browser():
    try:
        bootstrap.ensure_packages(bootstrap.BROWSER_PACKAGES, log=lambda *_: None)
    except bootstrap.BootstrapError as e:
        pytest.skip(f"Chromium cannot be installed here: {e}")
    if chromium_cdp.chromium_binary() is None:
        pytest.skip("Chromium cannot be installed here: no chromium binary after the bootstrap")
    with tempfile.TemporaryDirectory() as profile, chromium_cdp.Browser(profile) as b:
        yield b


def open_report(browser, directory, screenshot):
    url = (directory / "index.html").resolve().as_uri()
    session = browser.open_page(url)
    page = browser.evaluate(session, CHART_GEOMETRY)
    page["screenshot_bytes"] = browser.screenshot(session, screenshot)
    others = [u for u in browser.requests(session) if u != url]
    return page, browser.console_errors(session), others


def rendered(tmp_path, name):
    d = tmp_path / name
    shutil.copytree(FIXTURES / name, d)
    report.make_report(d)
    return d


def test_the_checks_catch_requests_and_console_errors(browser, tmp_path):
    control = tmp_path / "control"
    control.mkdir()
    (control / "index.html").write_text('<html><body><img src="http://127.0.0.1:9/x.png">'
                                        '<script>console.error("control error")</script></body></html>')
    _, errors, requests = open_report(browser, control, tmp_path / "control.png")
    assert requests == ["http://127.0.0.1:9/x.png"]
    assert "console: control error" in errors


def test_clean_run_report_in_chromium(browser, tmp_path):
    d = rendered(tmp_path, "ci-clean")
    page, errors, requests = open_report(browser, d, tmp_path / "ci-clean.png")
    assert errors == [] and requests == []
    assert page["screenshot_bytes"] > 50_000, "the screenshot is (nearly) empty"
    by_section = {}
    for c in page["charts"]:
        assert c["width"] > 100 and c["height"] > 100, c
        assert c["marks"] > 0, f"chart without visible data: {c['title']}"
        by_section[c["section"]] = by_section.get(c["section"], 0) + 1
    # workloads: three charts for each of three runs, and the maps at the two runs' first failures
    assert by_section == {"hunt": 2, "workloads": 11, "fuzzing": 2, "benchmarks": 1}
    print(f"screenshot: {tmp_path / 'ci-clean.png'}")


def test_findings_report_maps_in_chromium(browser, tmp_path):
    d = rendered(tmp_path, "nightly-findings")
    p = d / "findings" / "sawtooth-3.json"
    p.write_text(json.dumps(dict(json.loads(p.read_text()), id="<script>alert(1)</script>")))
    report.make_report(d)
    page, errors, requests = open_report(browser, d, tmp_path / "nightly-findings.png")
    assert errors == [] and requests == []
    assert page["screenshot_bytes"] > 50_000, "the screenshot is (nearly) empty"
    maps = [c for c in page["charts"] if c["title"].startswith("Address space at the failure")]
    assert len(maps) == 5 and all(c["marks"] > 1 for c in maps)
    assert any(c["title"].startswith("Physical memory at the failure") and c["marks"] > 0 for c in page["charts"])
    assert page["scripts"] == 0 and "<script>alert(1)</script>" in page["text"]
    assert "unsupported: EACCES" in page["text"]
    print(f"screenshot: {tmp_path / 'nightly-findings.png'}")


def test_half_written_report_in_chromium(browser, tmp_path):
    d = rendered(tmp_path, "killed-nightly")
    page, errors, requests = open_report(browser, d, tmp_path / "killed-nightly.png")
    assert errors == [] and requests == []
    assert "Missing or damaged results" in page["text"] and "never ran" in page["text"]
    assert any(c["section"] == "workloads" and c["marks"] > 0 for c in page["charts"])
