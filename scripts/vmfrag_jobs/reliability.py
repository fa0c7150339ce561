"""The reliability figures (issue #15) as one `vmfrag-reliability` v1 document, reliability.json.

Each figure comes from a GoogleTest test that tries many cases and records how many it tried and how
many passed (`RecordProperty("tried"/"passed", ...)`, allocator/tests/reliability_figures.h). This
runs those tests in the flavour the figure needs (asan: ASan+UBSan with -Dchecks=full, so a passed
case also means no sanitizer report and every structure walked after every change; tsan for the
concurrency stress, so "passed" there means TSan-clean), reads their `--gtest_output=json` and sums
the properties. The builds must exist (`scripts/vmfrag test --flavour asan` / `--flavour tsan`, or
ninja in build/<flavour>). Usage, from the repository root:

    PYTHONPATH=scripts /usr/bin/python3 -m vmfrag_jobs.reliability -o reliability.json

With --from-junit nothing runs: the figures are read from the JUnit log the last `meson test` of
each flavour left (build/<flavour>/meson-logs/testlog.junit.xml, which keeps the gtest properties),
so a job that has just run `scripts/vmfrag test` gets them for free.

A test binary that crashes (a sanitizer abort, a VMF_CHECK) writes no JSON: its figures are kept
with status "no-results" and 0 tried, never dropped. The exit status is 0 when every figure passed,
1 when one failed or has no results, 2 for bad usage (a build missing, an unwritable output).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from . import paths
from .results import provenance, schemas, writing

# The environment meson gives every test (meson.build: test_env): sanitizer findings abort.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "TSAN_OPTIONS": "halt_on_error=1:second_deadlock_stack=1",
}


@dataclass(frozen=True)
class Figure:
    name: str
    description: str
    flavour: str
    binary: str   # relative to the build directory
    tests: tuple  # gtest filter patterns


ALLOCATOR_TESTS = "allocator/tests/allocator_tests"
HARNESS_TESTS = "harness/tests/harness_tests"

FIGURES = (
    Figure("os-fault-injection", "OS calls failed one at a time: every fallible injection point of the "
           "representative sequence x errno, backings none/anon/memfd; passed = right kind, nothing leaked, "
           "check() clean, the rest of the sequence unchanged", "asan", ALLOCATOR_TESTS,
           ("Backings/FaultInjection.*",)),
    Figure("page-fault-injection", "page allocations failed one at a time (no-physical-memory and "
           "physical-fragmentation at every page/block allocation of the same sequence), three backings",
           "asan", ALLOCATOR_TESTS, ("Backings/PageFaultInjection.*",)),
    Figure("misuse-cases", "bad calls at the API (unknown, interior, double, foreign and cross-API "
           "releases; sizes near 2^64; bad alignments and sub-ranges): detected with the documented status "
           "or failure kind, address logged, state unchanged", "asan", ALLOCATOR_TESTS,
           ("Misuse.EveryCaseIsDetectedAndChangesNothing",)),
    Figure("bad-configurations", "bad region, guard, physical memory and vmap block sizes: EINVAL naming "
           "the parameter, no OS resource left", "asan", ALLOCATOR_TESTS,
           ("Misuse.BadConfigurationsAreRefusedWithNothingLeft",)),
    Figure("concurrency-stress", "thread counts (2, 4, 8, 16) run on one memfd instance under TSan with "
           "mixed ops, every area written and read back through the direct map; details.ops = ops run",
           "tsan", ALLOCATOR_TESTS, ("ConcurrencyStress.*",)),
    Figure("malformed-traces", "hand-written malformed traces: exact `FILE:LINE: error:` message",
           "asan", HARNESS_TESTS, ("TraceReader.MalformedInputGivesExactMessageAtTheRightLine",)),
    Figure("damaged-traces", "random bytes and randomly damaged traces: parsed, or rejected with an "
           "input error at a line inside the input", "asan", HARNESS_TESTS,
           ("TraceReader.ArbitraryBytesGiveOnlyInputErrors",)),
    Figure("trace-parser-corpus", "the trace parser's fuzzing corpus (corpus/trace_parser): parsed, or "
           "rejected with an input error at a line inside the file", "asan", HARNESS_TESTS,
           ("TraceReader.ParserCorpusGivesOnlyInputErrors",)),
)


def test_cases(gtest_json):
    """(full name, test case object) for every test case of a --gtest_output=json document."""
    for suite in gtest_json.get("testsuites", []):
        for case in suite.get("testsuite", []):
            yield f"{suite.get('name')}.{case.get('name')}", case


def _matches(name, patterns):
    return any(fnmatchcase(name, p) for p in patterns)


# gtest's own keys on a test case; everything else is a RecordProperty.
_GTEST_KEYS = {"name", "status", "result", "timestamp", "time", "classname", "failures", "type_param",
               "value_param", "file", "line"}


def figure_from_cases(figure, cases):
    """The figure's record from the gtest test cases that belong to it: tried/passed summed, the other
    integer properties summed into details; failed when a test failed or recorded fewer passes."""
    tried = passed = failed_tests = 0
    details, names = {}, []
    for name, case in cases:
        names.append(name)
        if case.get("failures"):
            failed_tests += 1
        for key, value in case.items():
            if key in _GTEST_KEYS:
                continue
            try:
                number = int(value)
            except (TypeError, ValueError):
                continue
            if key == "tried":
                tried += number
            elif key == "passed":
                passed += number
            else:
                details[key] = details.get(key, 0) + number
    ok = names and not failed_tests and tried > 0 and passed == tried
    return {"name": figure.name, "description": figure.description, "flavour": figure.flavour, "tests": names,
            "status": "passed" if ok else "failed", "tried": tried, "passed": min(passed, tried),
            "details": details}


def no_results_figure(figure, why):
    return {"name": figure.name, "description": figure.description, "flavour": figure.flavour, "tests": [],
            "status": "no-results", "tried": 0, "passed": 0, "details": {}, "error": why}


def run_gtest(binary, patterns):
    """Runs one test binary on the patterns; (parsed JSON or None, why it is None)."""
    with tempfile.TemporaryDirectory(prefix="vmfrag-reliability-") as tmp:
        out = Path(tmp) / "gtest.json"
        cmd = [str(binary), f"--gtest_filter={':'.join(patterns)}", f"--gtest_output=json:{out}"]
        r = subprocess.run(cmd, env=dict(os.environ, **SANITIZER_ENV), capture_output=True, text=True)
        if not out.exists():
            tail = (r.stdout + r.stderr).strip().splitlines()[-5:]
            return None, f"{' '.join(cmd)} exited {r.returncode} without results: " + " | ".join(tail)
        return json.loads(out.read_text()), ""


def junit_log(build_dir):
    return Path(build_dir) / "meson-logs" / "testlog.junit.xml"


def junit_cases(path):
    """(full name, test case object shaped like gtest JSON's) for every gtest case in a meson JUnit log."""
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        obj = {"name": case.get("name"), "classname": case.get("classname")}
        for prop in case.iter("property"):
            obj.setdefault(prop.get("name"), prop.get("value"))
        failures = [f.get("message") or "" for f in case.findall("failure")] + \
                   [e.get("message") or "" for e in case.findall("error")]
        if failures:
            obj["failures"] = failures
        yield f"{case.get('classname')}.{case.get('name')}", obj


def collect_from_junit(build_dirs, figures=FIGURES):
    """Every figure from the flavours' JUnit logs; a figure none of whose tests is there (its binary
    crashed before writing results, or it did not run) is kept as no-results."""
    cases = {flavour: list(junit_cases(junit_log(d))) for flavour, d in build_dirs.items()
             if flavour in {f.flavour for f in figures}}
    records = []
    for f in figures:
        mine = [(n, c) for n, c in cases[f.flavour] if _matches(n, f.tests)]
        records.append(figure_from_cases(f, mine) if mine else
                       no_results_figure(f, f"{junit_log(build_dirs[f.flavour])} has no results for {', '.join(f.tests)}"))
    return records


def collect(build_dirs, figures=FIGURES, run=run_gtest):
    """Every figure, running each (flavour, binary) once with all of its figures' tests."""
    records = {}
    groups = {}
    for f in figures:
        groups.setdefault((f.flavour, f.binary), []).append(f)
    for (flavour, binary), members in groups.items():
        doc, why = run(Path(build_dirs[flavour]) / binary, [p for f in members for p in f.tests])
        for f in members:
            if doc is None:
                records[f.name] = no_results_figure(f, why)
            else:
                records[f.name] = figure_from_cases(f, [(n, c) for n, c in test_cases(doc) if _matches(n, f.tests)])
    return [records[f.name] for f in figures]


def document(figures, options):
    return {"format": schemas.RELIABILITY, "version": 1,
            "provenance": provenance.provenance("+".join(sorted({f["flavour"] for f in figures})), options),
            "figures": figures}


def table(figures):
    """The figures as the Markdown table allocator/README.md shows."""
    lines = ["| figure | flavour | tried | passed | details |", "|---|---|---|---|---|"]
    for f in figures:
        details = ", ".join(f"{k} {v}" for k, v in sorted(f["details"].items()))
        lines.append(f"| {f['name']} | {f['flavour']} | {f['tried']} | {f['passed']} | {details} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="vmfrag_jobs.reliability", description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", required=True, help="where to write reliability.json")
    p.add_argument("--asan-build", default=str(paths.build_dir("asan")))
    p.add_argument("--tsan-build", default=str(paths.build_dir("tsan")))
    p.add_argument("--from-junit", action="store_true",
                   help="read the figures from each flavour's last meson test log instead of running the tests")
    p.add_argument("--table", action="store_true", help="also print the figures as a Markdown table")
    args = p.parse_args(argv)
    build_dirs = {"asan": args.asan_build, "tsan": args.tsan_build}
    for f in FIGURES:
        need = junit_log(build_dirs[f.flavour]) if args.from_junit else Path(build_dirs[f.flavour]) / f.binary
        if not need.is_file():
            print(f"vmfrag reliability: error: {need} does not exist (scripts/vmfrag test --flavour {f.flavour})",
                  file=sys.stderr)
            return 2
    try:
        figures = collect_from_junit(build_dirs) if args.from_junit else collect(build_dirs)
    except ElementTree.ParseError as e:
        print(f"vmfrag reliability: error: a JUnit log does not parse: {e}", file=sys.stderr)
        return 2
    try:
        writing.write_result(args.output, document(figures, {"build_dirs": build_dirs,
                                                             "from_junit": args.from_junit}))
    except (OSError, writing.InvalidResult) as e:
        print(f"vmfrag reliability: error: {e}", file=sys.stderr)
        return 2
    for f in figures:
        print(f"vmfrag reliability: {f['name']}: {f['passed']}/{f['tried']} {f['status']} ({f['flavour']})")
    if args.table:
        print(table(figures))
    return 0 if all(f["status"] == "passed" for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
