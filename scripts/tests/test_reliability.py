"""The reliability figures collector (scripts/vmfrag_jobs/reliability.py): how gtest properties become
a `vmfrag-reliability` v1 document, what a failed or crashed test binary gives, and the schema's
checks. The test binaries themselves are replaced by recorded gtest JSON, so this needs no build."""
import json

from vmfrag_jobs import reliability
from vmfrag_jobs.results import schemas, writing


def gtest_json(*cases):
    """A --gtest_output=json document: cases are (suite, name, properties, failed)."""
    suites = {}
    for suite, name, props, failed in cases:
        case = {"name": name, "status": "RUN", "result": "COMPLETED", "timestamp": "2026-12-01T14:00:00Z",
                "time": "0.1s", "classname": suite, **{k: str(v) for k, v in props.items()}}
        if failed:
            case["failures"] = [{"failure": "misuse_test.cpp:1\nExpected equality", "type": ""}]
        suites.setdefault(suite, []).append(case)
    return {"tests": len(cases), "testsuites": [{"name": s, "testsuite": c} for s, c in suites.items()]}


PAGE = reliability.FIGURES[1]
assert PAGE.name == "page-fault-injection"


def test_properties_are_summed_over_the_figures_tests():
    doc = gtest_json(("Backings/PageFaultInjection", "EveryPageAllocationFailsCleanly/none", {"tried": 10, "passed": 10, "points": 5}, False),
                     ("Backings/PageFaultInjection", "EveryPageAllocationFailsCleanly/memfd", {"tried": 20, "passed": 20, "points": 10}, False),
                     ("Misuse", "EveryCaseIsDetectedAndChangesNothing", {"tried": 70, "passed": 70}, False))
    cases = [(n, c) for n, c in reliability.test_cases(doc) if reliability._matches(n, PAGE.tests)]
    f = reliability.figure_from_cases(PAGE, cases)
    assert (f["tried"], f["passed"], f["status"]) == (30, 30, "passed")
    assert f["details"] == {"points": 15}
    assert f["tests"] == ["Backings/PageFaultInjection.EveryPageAllocationFailsCleanly/none",
                          "Backings/PageFaultInjection.EveryPageAllocationFailsCleanly/memfd"]


def test_a_failed_case_or_a_missing_pass_fails_the_figure():
    failed = gtest_json(("Backings/PageFaultInjection", "X/none", {"tried": 10, "passed": 10}, True))
    short = gtest_json(("Backings/PageFaultInjection", "X/none", {"tried": 10, "passed": 9}, False))
    empty = gtest_json(("Other", "Y", {}, False))
    for doc in (failed, short, empty):
        cases = [(n, c) for n, c in reliability.test_cases(doc) if reliability._matches(n, PAGE.tests)]
        assert reliability.figure_from_cases(PAGE, cases)["status"] == "failed"


def test_a_crashed_binary_keeps_its_figures_as_no_results_and_the_document_is_valid(tmp_path):
    def fake_run(binary, patterns):
        if binary.name == "harness_tests":
            return None, f"{binary} exited -6 without results"
        cases = []
        for p in patterns:
            suite, name = (p[:-2], "T/memfd") if p.endswith(".*") else p.rsplit(".", 1)
            cases.append((suite, name, {"tried": 4, "passed": 4, "ops": 100}, False))
        return gtest_json(*cases), ""

    figures = reliability.collect({"asan": tmp_path / "asan", "tsan": tmp_path / "tsan"}, run=fake_run)
    by_name = {f["name"]: f for f in figures}
    assert [f["name"] for f in figures] == [f.name for f in reliability.FIGURES]
    assert by_name["trace-parser-corpus"]["status"] == "no-results"
    assert by_name["trace-parser-corpus"]["tried"] == 0
    assert "exited -6" in by_name["trace-parser-corpus"]["error"]
    assert by_name["misuse-cases"]["status"] == "passed"
    assert by_name["concurrency-stress"]["details"] == {"ops": 100}
    out = tmp_path / "reliability.json"
    writing.write_result(out, reliability.document(figures, {"test": True}))
    doc = json.loads(out.read_text())
    assert schemas.identify(doc) == (schemas.RELIABILITY, 1)
    assert schemas.validate(schemas.RELIABILITY, 1, doc, "reliability.json") == []
    assert "| misuse-cases | asan | 4 | 4 |" in reliability.table(figures)


def test_the_schema_refuses_impossible_figures():
    figure = {"name": "misuse-cases", "description": "d", "flavour": "asan", "tests": [], "status": "passed",
              "tried": 3, "passed": 4, "details": {}}
    doc = {"format": schemas.RELIABILITY, "version": 1, "figures": [figure, dict(figure, status="fine", passed=1)],
           "provenance": {"commit": None, "flavour": "asan", "options": None, "machine": None}}
    problems = schemas.validate(schemas.RELIABILITY, 1, doc, "r.json")
    assert any("'passed' 4 is not within 0..tried (3)" in p for p in problems)
    assert any("'status' is 'fine'" in p for p in problems)
    assert schemas.validate(schemas.RELIABILITY, 2, doc, "r.json")[0].endswith("newer than this reader (reads up to 1)")


def test_a_missing_build_is_a_usage_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "reliability.json"
    code = reliability.main(["-o", str(out), "--asan-build", str(tmp_path / "none"), "--tsan-build", str(tmp_path)])
    assert code == 2
    assert not out.exists()
    assert "does not exist" in capsys.readouterr().err


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites tests="3" errors="0" failures="1">
  <testsuite name="vmfrag.vmfrag:allocator / allocator.Misuse" tests="2">
    <testcase name="EveryCaseIsDetectedAndChangesNothing" status="run" classname="Misuse">
      <properties><property name="tried" value="70" /><property name="passed" value="70" /></properties>
    </testcase>
    <testcase name="BadConfigurationsAreRefusedWithNothingLeft" status="run" classname="Misuse">
      <properties><property name="tried" value="15" /><property name="passed" value="14" /></properties>
      <failure message="misuse_test.cpp:420 Expected equality" type="" />
    </testcase>
  </testsuite>
  <testsuite name="vmfrag.vmfrag:allocator / allocator.ConcurrencyStress" tests="1">
    <testcase name="MixedOpsOnSharedInstanceStayCorrectAndTheStructuresStayValid" status="run" classname="ConcurrencyStress">
      <properties><property name="ops" value="19200" /><property name="tried" value="4" /><property name="passed" value="4" /></properties>
    </testcase>
  </testsuite>
</testsuites>
"""


def test_figures_from_a_meson_junit_log(tmp_path):
    for flavour in ("asan", "tsan"):
        (tmp_path / flavour / "meson-logs").mkdir(parents=True)
        (tmp_path / flavour / "meson-logs" / "testlog.junit.xml").write_text(JUNIT)
    figures = reliability.collect_from_junit({"asan": tmp_path / "asan", "tsan": tmp_path / "tsan"})
    by_name = {f["name"]: f for f in figures}
    assert (by_name["misuse-cases"]["tried"], by_name["misuse-cases"]["status"]) == (70, "passed")
    assert (by_name["bad-configurations"]["passed"], by_name["bad-configurations"]["status"]) == (14, "failed")
    assert by_name["concurrency-stress"]["details"] == {"ops": 19200}
    assert by_name["os-fault-injection"]["status"] == "no-results"  # no results for its tests in the log
    assert "has no results for Backings/FaultInjection.*" in by_name["os-fault-injection"]["error"]
    assert schemas.validate(schemas.RELIABILITY, 1, reliability.document(figures, {}), "r.json") == []
