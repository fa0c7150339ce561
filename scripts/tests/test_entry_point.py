"""scripts/vmfrag itself: argparse front end, exit codes, the package bootstrap's idempotence,
test-result totalling (what decides the job's exit code), and that a second build does nothing."""
import subprocess
import textwrap

from vmfrag_jobs import bootstrap, build, testing  # on PYTHONPATH via the test job


def vmfrag(repo, *args):
    return subprocess.run([str(repo / "scripts" / "vmfrag"), *args], capture_output=True, text=True)


def test_help_lists_the_jobs(repo):
    r = vmfrag(repo, "--help")
    assert r.returncode == 0
    for cmd in ("ci", "test", "setup", "replay", "gen", "minimize"):
        assert cmd in r.stdout


def test_usage_errors_exit_2(repo):
    assert vmfrag(repo).returncode == 2
    r = vmfrag(repo, "no-such-command")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr
    assert vmfrag(repo, "ci", "--seeds", "many").returncode == 2


def test_bootstrap_sees_installed_packages_and_reports_missing_ones():
    # The test job ran the bootstrap, so everything it needs is installed now.
    assert bootstrap.missing_packages() == []
    assert bootstrap.missing_packages(["g++", "vmfrag-no-such-package"]) == ["vmfrag-no-such-package"]


def test_a_second_build_has_no_work(release_build):
    r = subprocess.run(["ninja", "-C", str(release_build), "-n"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "no work to do" in r.stdout, r.stdout


def test_configure_is_idempotent(release_build):
    stamp = release_build / "vmfrag-flavour.json"
    before = stamp.stat().st_mtime_ns
    build.configure(build.FLAVOURS["release"], log=lambda *_: None)
    assert stamp.stat().st_mtime_ns == before


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_totals_count_cases_from_junit(tmp_path):
    p = write(tmp_path, "a.xml", """\
        <testsuites><testsuite name="s">
          <testcase name="a"/><testcase name="b"><failure message="x"/></testcase>
          <testcase name="c"><skipped/></testcase><testcase name="d"><error/></testcase>
        </testsuite></testsuites>""")
    t = testing.Totals()
    t.add_junit(p)
    assert (t.passed, t.failed, t.skipped) == (1, 2, 1)
    assert not t.ok
    assert t.line() == "vmfrag: 1 passed, 2 failed, 1 skipped"


def test_totals_are_not_ok_without_tests_or_with_a_broken_suite(tmp_path):
    t = testing.Totals()
    assert not t.ok  # nothing ran: never a silent pass
    t.add_junit(tmp_path / "missing.xml")
    assert t.broken and not t.ok
    assert t.line() == "vmfrag: 0 passed, 1 failed, 0 skipped"
    ok = testing.Totals()
    ok.add_junit(write(tmp_path, "b.xml", '<testsuite><testcase name="a"/></testsuite>'))
    assert ok.ok
