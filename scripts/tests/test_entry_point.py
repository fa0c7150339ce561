"""scripts/vmfrag itself: argparse front end (one-line usage errors, option ranges checked before any
build, harness commands forwarded verbatim, Ctrl-C as exit 130), exit codes, the package bootstrap's idempotence,
test-result totalling (what decides the job's exit code), and that a second build does nothing."""
import json
import subprocess
import textwrap

import pytest

from vmfrag_jobs import bootstrap, build, ci_job, cli, testing  # on PYTHONPATH via the test job


def vmfrag(repo, *args):
    return subprocess.run([str(repo / "scripts" / "vmfrag"), *args], capture_output=True, text=True)


def test_help_lists_the_jobs(repo):
    r = vmfrag(repo, "--help")
    assert r.returncode == 0
    for cmd in ("ci", "test", "setup", "replay", "gen", "minimize"):
        assert cmd in r.stdout


def test_help_describes_the_tool_in_whole_sentences(repo):
    r = vmfrag(repo, "--help")
    assert "hunts fragmentation failures in a vmalloc-style allocator" in r.stdout
    assert "130 interrupted." in r.stdout


def test_usage_errors_exit_2_with_one_line(repo):
    assert vmfrag(repo).returncode == 2
    r = vmfrag(repo, "no-such-command")
    assert r.returncode == 2
    assert r.stderr.startswith("vmfrag: error: argument COMMAND: invalid choice: 'no-such-command'")
    for args, message in ((["ci", "--seeds", "many"], "'many' is not a whole number from 1 to 1000"),
                          (["ci", "--seeds", "0"], "'0' is not a whole number from 1 to 1000"),
                          (["ci", "--seeds", "-1"], "'-1' is not a whole number from 1 to 1000"),
                          (["ci", "--ops", "-1"], "'-1' is not a whole number from 1 to 1000000000"),
                          (["test", "--flavour", "nope"], "invalid choice: 'nope'"),
                          (["fuzz", "fuzz_ops", "--seconds", "0"], "'0' is not a whole number from 1 to 604800"),
                          (["fuzz", "nope"], "invalid choice: 'nope'"),
                          (["hunt-eval", "--trials", "0"], "'0' is not a whole number from 1 to 1000"),
                          (["hunt-eval", "--threshold", "2"], "'2' is not a number from 0.0 to 1.0")):
        r = vmfrag(repo, *args)
        assert r.returncode == 2, args
        assert r.stderr.startswith("vmfrag: error: argument ") and message in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) == 1, r.stderr


def test_ci_validates_options_before_building_anything(repo, tmp_path):
    # An empty PATH: if ci tried to install or build, dpkg-query/meson could not even be found.
    r = subprocess.run([str(repo / "scripts" / "vmfrag"), "ci", "--seeds", "0", "--out", str(tmp_path)],
                       capture_output=True, text=True, env={"PATH": ""})
    assert r.returncode == 2 and "--seeds" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["replay", "--json", "{trace}"],
    ["replay", "{trace}", "--json"],
    ["gen", "--seed", "1", "checkerboard", "--ops", "20"],
    ["gen", "checkerboard", "--ops", "20", "--seed", "1"],
    ["workloads", "--json"],
])
def test_harness_commands_get_their_arguments_verbatim_in_any_order(repo, tmp_path, args):
    trace = tmp_path / "t.vmtrace"
    trace.write_text("vmtrace 1\nregion 64K\na 0 4K\n")
    r = vmfrag(repo, *[a.format(trace=trace) for a in args])
    assert r.returncode == 0, r.stderr
    if "--json" in args:
        json.loads(r.stdout)


@pytest.mark.parametrize("command", ["replay", "gen", "minimize", "import-vmallocinfo", "import-malloclab",
                                     "workloads"])
def test_harness_command_help_is_the_binarys(repo, command):
    r = vmfrag(repo, command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].startswith(f"Usage: vmfrag {command} [OPTIONS]"), r.stdout


def test_harness_command_errors_pass_through_with_exit_2(repo):
    r = vmfrag(repo, "gen", "checkerboard", "--seed", "1", "--ops", "-1")
    assert r.returncode == 2
    assert r.stderr == "vmfrag: error: --ops: '-1' is not a whole number from 1 to 1000000000\n"


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_setup", interrupted)
    assert cli.main(["setup"]) == 130
    assert capsys.readouterr().err == "vmfrag: interrupted\n"


def test_interrupted_ci_shows_as_unfinished_and_leaves_no_partial_file(monkeypatch, tmp_path):
    # Each run has a directory of its own, so nothing stale can look current; what an interrupted
    # run must not do is look finished, or leave a half-written file behind.
    monkeypatch.setattr(ci_job.bootstrap, "ensure_packages", lambda: [])
    monkeypatch.setattr(ci_job.build, "build", lambda flavour, log=None: None)

    def interrupted(self):
        (self.out / "bugs").mkdir()
        raise KeyboardInterrupt
    monkeypatch.setattr(ci_job.CiRun, "step_regressions", interrupted)
    args = cli.parser().parse_args(["ci", "--out", str(tmp_path / "run"), "--no-history"])
    with pytest.raises(KeyboardInterrupt):
        ci_job.run(args)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["finished"] is None and run["exit_code"] is None
    assert [s["status"] for s in run["steps"]][:2] == ["done", "pending"]
    assert not [p for p in (tmp_path / "run").rglob("*") if p.name.endswith((".tmp", ".partial"))]


def test_ci_refuses_an_out_directory_with_an_earlier_run(repo, tmp_path):
    (tmp_path / "ci.json").write_text("{}")
    r = vmfrag(repo, "ci", "--out", str(tmp_path))
    assert r.returncode == 2 and "not empty" in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["ci.json"]


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


def test_result_writer_never_replaces_links_fifos_or_devices(tmp_path):
    # The Python side's one writer follows the C++ OutputFile's rules (harness/files/output_file.h).
    import os
    import stat
    import threading
    from vmfrag_jobs.results.writing import write_atomically
    real = tmp_path / "real.json"
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomically(link, "new")
    assert link.is_symlink() and real.read_text() == "new" and stat.S_IMODE(real.stat().st_mode) == 0o640
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_atomically(fifo, "through")
    reader.join(timeout=10)
    assert got == ["through"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    write_atomically("/dev/null", "x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    with pytest.raises(OSError):
        write_atomically("/dev/full", "x" * 100000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "out.fifo", "real.json"]
