"""Runs the test suites: meson test in each build flavour, then pytest, and totals the results.

The totals count individual test cases (GoogleTest cases through meson's JUnit log, pytest cases
through pytest's), and end in one line `vmfrag: N passed, N failed, N skipped`.
"""
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from . import build, paths

SYSTEM_PYTHON = "/usr/bin/python3"
PYTEST_DIRS = ["scripts/tests", "harness/tests"]
PYTEST_NO_TESTS_COLLECTED = 5
# meson test's line for a passing test: " 3/12 vmfrag:allocator / allocator   OK   1.23s"
PASSING_TEST_LINE = re.compile(r"^\s*\d+/\d+ .* OK ")


@dataclass
class Totals:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    broken: list = None  # names of suites that failed as a whole (crash, no tests, build)

    def __post_init__(self):
        self.broken = [] if self.broken is None else self.broken

    def add_junit(self, path):
        """Adds the cases of a JUnit XML file; a missing file counts as a broken suite."""
        if not path.exists():
            self.broken.append(f"{path} missing")
            return
        for case in ET.parse(path).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                self.failed += 1
            elif case.find("skipped") is not None:
                self.skipped += 1
            else:
                self.passed += 1

    @property
    def ok(self):
        return self.failed == 0 and not self.broken and self.passed > 0

    def line(self):
        # A suite that broke as a whole (crash, missing results) counts as one failure: the line
        # never reads "0 failed" while the job fails.
        failed = self.failed + len(self.broken)
        return f"vmfrag: {self.passed} passed, {failed} failed, {self.skipped} skipped"


def meson_tests(flavour, totals, suites=None):
    bdir = paths.build_dir(flavour.name)
    cmd = ["meson", "test", "-C", str(bdir), "--no-rebuild", "--print-errorlogs", "--num-processes", "2"]
    for s in suites or []:
        cmd += ["--suite", s]
    print(f"vmfrag: meson test ({flavour.name})", flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Keep the summary and anything that failed; the per-test lines of passing suites are noise.
    for ln in r.stdout.splitlines():
        if not PASSING_TEST_LINE.match(ln):
            print(ln)
    before = totals.failed
    totals.add_junit(bdir / "meson-logs" / "testlog.junit.xml")
    if r.returncode != 0 and totals.failed == before:
        totals.broken.append(f"meson test ({flavour.name}) exited {r.returncode}")


def pytest_suites(totals, extra_args=()):
    paths.RESULTS.mkdir(exist_ok=True)
    junit = paths.RESULTS / "pytest.xml"
    if junit.exists():
        junit.unlink()
    env = dict(os.environ, VMFRAG_BUILD_DIR=str(paths.build_dir("release")),
               PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(paths.REPO / "scripts"))
    cmd = [SYSTEM_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "vmfrag_jobs.pytest_plugin",
           f"--junitxml={junit}", *PYTEST_DIRS, *extra_args]
    print("vmfrag: pytest", flush=True)
    r = subprocess.run(cmd, cwd=paths.REPO, env=env)
    if r.returncode == PYTEST_NO_TESTS_COLLECTED:
        # The suites exist in the repo; collecting nothing means they vanished or broke.
        totals.broken.append("pytest collected no tests")
        return
    before = totals.failed
    totals.add_junit(junit)
    if r.returncode != 0 and totals.failed == before:
        totals.broken.append(f"pytest exited {r.returncode}")


RELIABILITY_JSON = paths.RESULTS / "reliability.json"


def write_reliability_figures(flavours):
    """After the asan and tsan suites ran, issue 15's figures from their JUnit logs (nothing runs
    again) to results/reliability.json, which `scripts/vmfrag ci` puts in its report when it is
    this commit's. Said on stdout; a figure that failed is already a failed test above."""
    from . import reliability
    from .results import writing
    names = {f.name for f in flavours}
    if not {"asan", "tsan"} <= names:
        return None
    dirs = {n: paths.build_dir(n) for n in ("asan", "tsan")}
    figures = reliability.collect_from_junit(dirs)
    writing.write_result(RELIABILITY_JSON, reliability.document(figures, {"from_junit": True}))
    passed = sum(f["status"] == "passed" for f in figures)
    print(f"vmfrag: reliability figures: {passed}/{len(figures)} passed -> {RELIABILITY_JSON.relative_to(paths.REPO)}")
    return figures


def run_all(flavours, with_pytest=True):
    totals = Totals()
    for f in flavours:
        build.build(f)
    for f in flavours:
        meson_tests(f, totals)
    write_reliability_figures(flavours)
    if with_pytest:
        pytest_suites(totals)
    for b in totals.broken:
        print(f"vmfrag: broken: {b}", file=sys.stderr)
    return totals
