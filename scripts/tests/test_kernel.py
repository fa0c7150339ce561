"""kernel-replay and confirm (kernel/, scripts/vmfrag_jobs/kernel/): the trace -> module-input
encoding, the parsing of the guest's console, the window model that turns the kernel's answers into
replay JSON (checked against the C++ replay on the same trace), the op-by-op comparison, refusals of
what the kernel cannot replay, and that a run whose module did not load or printed nothing fails
loudly, and the confirmation records of findings (confirm_findings: identical, differs,
not-confirmable, error, resuming). The last tests boot Debian's Linux 6.1 under QEMU (downloaded
once into results/kernel-cache/): one confirm end to end, and confirm_findings with a module that
cannot load."""
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from vmfrag_jobs.kernel import (comparison, confirmation, console, errors, guest, module_build,  # on PYTHONPATH
                                packages, trace, window)  # via the test job

PAGE = 4096


def trace_file(tmp_path, text, name="t.vmtrace"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def decode(blob):
    magic, region, no_guard, eager, max_align, nops, nslots, zero = trace.HEADER.unpack_from(blob)
    assert magic == trace.MAGIC and zero == 0
    ops = [trace.OP.unpack_from(blob, trace.HEADER.size + i * trace.OP.size) for i in range(nops)]
    assert len(blob) == trace.HEADER.size + nops * trace.OP.size
    return dict(region=region, no_guard=no_guard, eager=eager, max_align=max_align, nslots=nslots), ops


# --- encoding -----------------------------------------------------------------------------------

def test_encoding_gives_each_alloc_a_slot_and_frees_the_ids_latest(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, """\
        vmtrace 1
        region 1M   # comment
        a 7 5000
        a 8 8K 64K
        f 7
        a 7 4K      # id 7 again: a new slot
        p
        f 7
        """))
    hdr, ops = decode(trace.encode_ops(t))
    assert hdr == dict(region=1 << 20, no_guard=0, eager=0, max_align=64 << 10, nslots=3)
    a, f, p = ord("a"), ord("f"), ord("p")
    # guard 1: the kernel's own one-page guard, so the size goes as rounded up to pages
    assert ops == [(a, 0, 8192, PAGE, 0), (a, 0, 8192, 64 << 10, 1), (f, 0, 0, 0, 0),
                   (a, 0, PAGE, PAGE, 2), (p, 0, 0, 0, 0), (f, 0, 0, 0, 2)]


@pytest.mark.parametrize("guard,lazy,size,want_size,no_guard,eager", [
    (0, 0, 5000, 5000, 1, 1),               # VM_NO_GUARD, eager purge
    (3, 8192, 5000, 8192 + 2 * PAGE, 0, 0),  # two extra guard pages ride in the size
    (1, 100, 0, 0, 0, 0),                    # size 0: sent as is, the kernel refuses it
    (2, 100, (1 << 64) - 1, (1 << 64) - 1, 0, 0),  # need overflows: sent as is, refused too
])
def test_encoding_makes_the_kernels_area_as_long_as_vmfrags(tmp_path, guard, lazy, size, want_size, no_guard,
                                                             eager):
    t = trace.read_trace(trace_file(tmp_path, f"vmtrace 1\nregion 64K\nguard {guard}\nlazy {lazy}\na 1 {size}\n"))
    hdr, ops = decode(trace.encode_ops(t))
    assert (hdr["no_guard"], hdr["eager"]) == (no_guard, eager)
    assert ops[0][2] == want_size
    need = trace.area_need(size, guard)
    if need is not None:  # kernel area = size rounded up + its own guard page (none with VM_NO_GUARD)
        assert -(-want_size // PAGE) * PAGE + (0 if no_guard else PAGE) == need


@pytest.mark.parametrize("line,message", [
    ("k 2 8K", "op 'k' (kmalloc) cannot be replayed in the kernel"),
    ("m 2 4", "op 'm' (vm_map_ram) cannot be replayed"),
    ("h 2 4M", "op 'h' (vmalloc_huge) cannot be replayed"),
    ("a 2 4K 2T", "align 2T is above what a window in the kernel's vmalloc range can honour (1T)"),
])
def test_ops_the_kernel_cannot_replay_are_one_line_errors(tmp_path, line, message):
    p = trace_file(tmp_path, f"vmtrace 1\nregion 64K\na 1 4K\n{line}\n")
    with pytest.raises(errors.TraceError) as e:
        trace.read_trace(p, display="t.vmtrace")
    assert str(e.value) == f"t.vmtrace:4: error: {message}" or str(e.value).startswith(f"t.vmtrace:4: error: {message}")
    assert "\n" not in str(e.value)


def test_cli_refuses_kmalloc_traces_with_exit_2_before_booting(repo, tmp_path):
    p = trace_file(tmp_path, "vmtrace 1\nregion 64K\nk 1 8K\n")
    r = subprocess.run([str(repo / "scripts" / "vmfrag"), "confirm", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == f"{p}:3: error: op 'k' (kmalloc) cannot be replayed in the kernel: " \
                       "kernel-replay and confirm replay only a, f and p\n"


def test_cli_passes_the_readers_errors_through_with_exit_2(repo, tmp_path):
    p = trace_file(tmp_path, "vmtrace 1\nregion 64K\nf 1\n")
    r = subprocess.run([str(repo / "scripts" / "vmfrag"), "kernel-replay", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == f"{p}:3: error: id 1 was never allocated\n"


@pytest.mark.parametrize("args,message", [
    (["--smp", "0"], "'0' is not a whole number from 1 to 8"),
    (["--smp", "x"], "'x' is not a whole number from 1 to 8"),
    (["--kernel", "5.10"], "invalid choice: '5.10'"),
])
def test_cli_options_are_checked_before_anything_runs(repo, tmp_path, args, message):
    r = subprocess.run([str(repo / "scripts" / "vmfrag"), "kernel-replay", "t.vmtrace", *args],
                       capture_output=True, text=True, env={"PATH": ""})
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


# --- console parsing ------------------------------------------------------------------------------

def console_text(trace, lines, region=65536, begin_prefix="\x1bc\x1b[?7l", lazy_start="0"):
    head = (f'{begin_prefix}begin release=6.1.0-57-amd64 version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3" '
            f"window=0xffffe958c0000000 region={region} cpus=1 lazy_max=8192 lazy_nr=found eager=0 "
            f"ops={len(trace.ops)} lazy_start={lazy_start}")
    noise = ["SeaBIOS (version 1.16.2-debian-1.16.2-1)", "[    0.000000] Linux version 6.1.0-57-amd64"]
    body = noise + [head] + lines + [f"end ops={len(lines)} ns=5650311", "[    3.52] reboot: Power down"]
    return "\r\n".join(body) + "\r\n"


SMALL = """\
    vmtrace 1
    region 64K
    a 1 8K
    a 2 16K 16K
    a 3 40K
    f 1
    a 4 4K
    p
    a 5 0
    """
SMALL_LINES = ["o 0 a ok 0 0", "o 1 a ok 16384 0", "o 2 a fail 109610 0", "o 3 f ok 3", "o 4 a ok 36864 3",
               "o 5 p ok 0", "o 6 a fail 109610 0"]


def test_console_parsing_reads_the_modules_lines_among_kernel_noise(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, SMALL))
    run = console.parse_console(console_text(t, SMALL_LINES), t)
    assert (run.release, run.cpus, run.lazy_max, run.lazy_start, run.replay_ns) == \
        ("6.1.0-57-amd64", 1, 8192, 0, 5650311)
    assert run.version.startswith("#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3")
    assert run.window == 0xffffe958c0000000
    assert [(o.kind, o.status, o.value, o.lazy_nr) for o in run.outcomes] == [
        ("a", "ok", 0, 0), ("a", "ok", 16384, 0), ("a", "fail", 109610, 0), ("f", "ok", 0, 3),
        ("a", "ok", 36864, 3), ("p", "ok", 0, 0), ("a", "fail", 109610, 0)]


def test_console_without_the_lazy_counter_reads_dashes(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 64K\na 1 4K\n"))
    text = console_text(t, ["o 0 a ok 0 -"], lazy_start="-").replace("lazy_nr=found", "lazy_nr=missing")
    run = console.parse_console(text, t)
    assert run.lazy_start is None and run.outcomes[0].lazy_nr is None


@pytest.mark.parametrize("mangle,message", [
    (lambda text: "", "the guest printed nothing"),
    (lambda text: "   \r\n\r\n", "the guest printed nothing"),
    (lambda text: "Booting from ROM...\r\nvmfrag-init: insmod failed\r\n", "the module did not load"),
    (lambda text: "Booting from ROM...\r\n[ 1.0] Kernel panic - not syncing\r\n", "printed no 'begin' line"),
    (lambda text: text.split("o 4 ")[0], "the module's output stops after 4 of 7 ops"),
    (lambda text: text.replace("o 6 a fail 109610 0\r\n", ""), "stops after 6 of 7 ops"),
    (lambda text: text.replace("o 3 f ok 3", "o 3 p ok 3"), "replayed op 3 as 'p', the trace has 'f' (line 6)"),
    (lambda text: text.replace("o 2 a fail", "o 5 a fail"), "out of order at op 5"),
    (lambda text: text.replace("region=65536", "region=131072"), "replayed another input"),
])
def test_console_that_is_empty_short_or_foreign_fails_loudly(tmp_path, mangle, message):
    t = trace.read_trace(trace_file(tmp_path, SMALL))
    with pytest.raises(errors.KernelError) as e:
        console.parse_console(mangle(console_text(t, SMALL_LINES)), t)
    assert message in str(e.value)


# --- the window model -> replay JSON ---------------------------------------------------------------

def test_kernel_result_has_the_cpp_replays_schema_and_values(tmp_path, cli):
    p = trace_file(tmp_path, SMALL)
    t = trace.read_trace(p)
    got = window.kernel_result(t, console.parse_console(console_text(t, SMALL_LINES), t), {"series": "6.1"})
    want = json.loads(subprocess.run([str(cli), "replay", str(p), "--json"], check=True, capture_output=True,
                                     text=True).stdout)
    kernel = got.pop("kernel")
    assert kernel["release"] == "6.1.0-57-amd64" and kernel["series"] == "6.1"
    for f in got["failures"]:
        assert f.pop("available_pages") == 109610
    assert list(got) == list(want)
    assert got == want


def test_a_drop_of_the_lazy_counter_is_a_purge(tmp_path):
    # 8K areas (12K with guard) fill a 36K window; freeing one holds it lazily, so the next
    # alloc must purge (the counter drops from 3 to 0) and reuse the range.
    t = trace.read_trace(trace_file(tmp_path, """\
        vmtrace 1
        region 36K
        a 1 8K
        a 2 8K
        a 3 8K
        f 2
        a 4 8K
        f 4
        a 5 16K
        """))
    lines = ["o 0 a ok 0 0", "o 1 a ok 12288 0", "o 2 a ok 24576 0", "o 3 f ok 3", "o 4 a ok 12288 0",
             "o 5 f ok 3", "o 6 a fail 100 0"]
    res = window.kernel_result(t, console.parse_console(console_text(t, lines, region=36 * 1024), t), {})
    assert res["placements"] == {"1": 0, "2": 12288, "3": 24576, "4": 12288}
    assert res["final"]["purges"] == 2  # one inside op 4, one inside the failed op 6
    f = res["failures"][0]
    assert (f["kind"], f["free_bytes"], f["lazy_bytes"]) == ("no-virtual-space", 12288, 0)
    assert f["map"] == [[0, 12288, "busy"], [12288, 12288, "free"], [24576, 12288, "busy"]]


def test_a_placement_on_live_space_is_refused_not_modelled(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 64K\na 1 8K\na 2 8K\n"))
    with pytest.raises(errors.KernelError, match="holds live"):
        window.kernel_result(t, console.parse_console(console_text(t, ["o 0 a ok 0 0", "o 1 a ok 4096 0"]), t), {})


def test_failure_kinds_of_the_kernels_own(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, """\
        vmtrace 1
        region 1M
        a 1 24K
        a 2 16K
        a 3 4K
        f 2
        p
        a 4 12K 32K
        a 5 64K
        """))
    # op 5: a 32K-aligned fit exists at 32K, the kernel failed (say): alignment-search-miss;
    # op 6: 64K fits, but only 10 pages are available: no-physical-memory.
    lines = ["o 0 a ok 0 0", "o 1 a ok 28672 0", "o 2 a ok 49152 0", "o 3 f ok 5", "o 4 p ok 0",
             "o 5 a fail 100000 0", "o 6 a fail 10 0"]
    res = window.kernel_result(t, console.parse_console(console_text(t, lines, region=1 << 20), t), {})
    assert [f["kind"] for f in res["failures"]] == ["alignment-search-miss", "no-physical-memory"]


def test_lazy_threshold_crossed_by_pages_from_outside_the_window_is_noted(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 64K\na 1 4K\nf 1\n"))
    lines = ["o 0 a ok 0 9000", "o 1 f ok 0"]  # the counter fell: the kernel purged after 2 pages
    res = window.kernel_result(t, console.parse_console(console_text(t, lines), t), {})
    assert "pages freed outside the window crossed it" in res["kernel"]["notes"][0]["note"]
    assert res["final"]["lazy_bytes"] == 0


# --- comparison --------------------------------------------------------------------------------------

def steps_of(results, lazy=None):
    return [{"op": i, "result": r[0], "offset": r[1], "lazy_bytes": (lazy or [0] * len(results))[i]}
            for i, r in enumerate(results)]


def ksteps(outcomes, lazy=None):
    return [{"outcome": o, "lazy_bytes": (lazy or [0] * len(outcomes))[i], "lazy_nr": 7}
            for i, o in enumerate(outcomes)]


@pytest.mark.parametrize("vm,kernel,kind", [
    (("ok", 0x8000), ("ok", 0x10000), "alignment-search"),
    (("ok", 0x8000), ("fail", "alignment-search-miss"), "alignment-search"),
    (("ok", 0x8000), ("fail", "no-physical-memory"), "kernel-failed"),
    (("virtual-fragmentation", 0), ("ok", 0x10000), "kernel-placed"),
    (("virtual-fragmentation", 0), ("fail", "no-virtual-space"), "failure-kind"),
])
def test_compare_reports_the_first_difference_with_both_outcomes(tmp_path, vm, kernel, kind):
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 1M\na 1 4K\na 2 12K 32K\na 3 4K\n"))
    steps = steps_of([("ok", 0), vm, ("ok", 0x20000)])
    d = comparison.compare(t, steps, ksteps([("ok", 0), kernel, ("ok", 0x30000)]))
    assert (d["op"], d["line"], d["text"], d["kind"]) == (1, 4, "a 2 12K 32K", kind)
    assert d["vmfrag"] == comparison.outcome_dict(("ok", vm[1]) if vm[0] == "ok" else ("fail", vm[0]))
    assert d["kernel"] == comparison.outcome_dict(kernel)


def test_compare_identical_and_page_aligned_placement_difference(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 1M\na 1 4K\nf 1\na 2 4K\n"))
    steps = steps_of([("ok", 0), ("ok", 0), ("ok", 8192)], lazy=[0, 8192, 8192])
    assert comparison.compare(t, steps, ksteps([("ok", 0), None, ("ok", 8192)], lazy=[0, 8192, 8192])) is None
    d = comparison.compare(t, steps, ksteps([("ok", 0), None, ("ok", 0)], lazy=[0, 8192, 8192]))
    assert d["kind"] == "placement" and d["op"] == 2


def test_compare_finds_a_purge_at_another_op_before_the_placement_it_moves(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 1M\na 1 4K\nf 1\na 2 4K\n"))
    steps = steps_of([("ok", 0), ("ok", 0), ("ok", 8192)], lazy=[0, 8192, 8192])
    d = comparison.compare(t, steps, ksteps([("ok", 0), None, ("ok", 0)], lazy=[0, 0, 0]))
    assert (d["op"], d["kind"]) == (1, "purge-timing")
    assert d["vmfrag"]["lazy_bytes"] == 8192 and d["kernel"]["lazy_bytes"] == 0
    assert "lazily held" in comparison.describe(d["kernel"])
    late = comparison.compare(t, steps_of([("ok", 0), ("ok", 0), ("ok", 0)], lazy=[0, 0, 0]),
                      ksteps([("ok", 0), None, ("ok", 8192)], lazy=[0, 8192, 8192]))
    assert late["kind"] == "purge-timing-late"


# --- confirmation records for findings (confirm_findings): canned guests, no QEMU -------------------

def finding_dir(tmp_path, traces):
    """A findings directory: for each id, its trace and a vmfrag-finding sidecar naming it."""
    d = tmp_path / "findings"
    d.mkdir(exist_ok=True)
    for fid, text in traces.items():
        (d / f"{fid}.vmtrace").write_text(textwrap.dedent(text))
        (d / f"{fid}.json").write_text(json.dumps({"format": "vmfrag-finding", "version": 1, "id": fid,
                                                   "trace": f"{fid}.vmtrace"}))
    return d


class CannedGuest:
    """Stands in for the kernel: fetch/build give a fake kernel, a boot prints `lines[trace text]`
    through the real console parser (or raises what `fail` says)."""

    def __init__(self, monkeypatch, lines, fail=None, fetch_error=None):
        self.lines, self.fail, self.fetch_error, self.boots, self.fetches = lines, fail, fetch_error, [], 0
        monkeypatch.setattr(confirmation, "ready_kernel", self.ready)
        monkeypatch.setattr(guest, "guest_run", self.run)

    def ready(self, series, log=print):
        self.fetches += 1
        if self.fetch_error:
            raise errors.KernelError(self.fetch_error)
        return confirmation.ReadyKernel(packages.Kernel(series, "6.1.0-57-amd64", "6.1.192-3", []), Path("m.ko"),
                              {"fetch": 0.5, "module_build": 0.0})

    def run(self, kernel, ko, trace, smp, qemu=None):
        self.boots.append(trace.path)
        if self.fail:
            raise errors.KernelError(self.fail)
        return console.parse_console(console_text(trace, self.lines[trace.path], region=trace.region), trace), 4.2


PLACED_ELSEWHERE = [ln.replace("o 4 a ok 36864", "o 4 a ok 45056") for ln in SMALL_LINES]
KMALLOC = "vmtrace 1\nregion 64K\nk 1 4K\nk 2 8K\n"


def test_confirm_findings_writes_a_record_per_finding_identical_differs_or_not_confirmable(tmp_path, monkeypatch,
                                                                                          cli):
    d = finding_dir(tmp_path, {"same": SMALL, "moved": SMALL, "kmalloc": KMALLOC})
    guest = CannedGuest(monkeypatch, {"same.vmtrace": SMALL_LINES, "moved.vmtrace": PLACED_ELSEWHERE})
    logged = []
    recs = {r["finding"]: r for r in confirmation.confirm_findings(d, ["6.1"], log=logged.append)}
    assert sorted(guest.boots) == ["moved.vmtrace", "same.vmtrace"] and guest.fetches == 1
    same, moved, kmalloc = recs["same"], recs["moved"], recs["kmalloc"]
    assert same == json.loads((d / "same.linux-6.1.json").read_text())  # written beside the sidecar
    assert (same["format"], same["version"], same["status"], same["first_difference"]) == \
        ("vmfrag-confirmation", 1, "identical", None)
    assert same["kernel"] == {"series": "6.1", "smp": 1, "release": "6.1.0-57-amd64",
                              "version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3", "package_version": "6.1.192-3",
                              "lazy_max_pages": 8192}
    assert (same["ops"], same["ops_compared"], same["allocations_compared"]) == (7, 7, 5)
    assert same["kernel_replay"]["placements"] == {"1": 0, "2": 16384, "4": 36864}
    assert same["kernel_replay"]["kernel"]["seconds"] == {"fetch": 0.5, "module_build": 0.0, "boot": 4.2}
    assert moved["status"] == "differs" and moved["ops_compared"] == 5
    diff = moved["first_difference"]
    assert (diff["op"], diff["line"], diff["text"], diff["kind"]) == (4, 7, "a 4 4K", "placement")
    assert (diff["vmfrag"], diff["kernel"]) == ({"result": "ok", "offset": 36864}, {"result": "ok", "offset": 45056})
    assert diff["explanation"] == comparison.EXPLAIN["placement"]
    assert kmalloc["status"] == "not-confirmable" and kmalloc["kernel"]["release"] is None
    assert kmalloc["reason"] == "kmalloc.vmtrace:3: error: op 'k' (kmalloc) cannot be replayed in the kernel: " \
                                "kernel-replay and confirm replay only a, f and p"
    assert sorted(p.name for p in d.iterdir() if ".linux-" in p.name) == \
        ["kmalloc.linux-6.1.json", "moved.linux-6.1.json", "same.linux-6.1.json"]
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert any("same on Linux 6.1.0-57-amd64: identical" in m for m in logged)


def test_confirm_findings_resumes_keeping_results_and_redoing_errors_and_changed_traces(tmp_path, monkeypatch, cli):
    d = finding_dir(tmp_path, {"same": SMALL, "kmalloc": KMALLOC, "flaky": SMALL})
    CannedGuest(monkeypatch, {"same.vmtrace": SMALL_LINES, "flaky.vmtrace": SMALL_LINES})
    confirmation.confirm_findings(d, ["6.1"], log=lambda *_: None)
    (d / "flaky.linux-6.1.json").write_text((d / "flaky.linux-6.1.json").read_text()
                                            .replace('"status": "identical"', '"status": "error"'))
    before = (d / "same.linux-6.1.json").read_text()
    guest = CannedGuest(monkeypatch, {"same.vmtrace": SMALL_LINES, "flaky.vmtrace": SMALL_LINES})
    recs = confirmation.confirm_findings(d, ["6.1"], log=lambda *_: None)
    assert guest.boots == ["flaky.vmtrace"]  # the error is retried, the results are kept
    assert (d / "same.linux-6.1.json").read_text() == before and len(recs) == 3
    (d / "same.vmtrace").write_text(textwrap.dedent(SMALL) + "# edited\n")  # another trace: confirmed again
    guest = CannedGuest(monkeypatch, {"same.vmtrace": SMALL_LINES})
    confirmation.confirm_findings(d, ["6.1"], log=lambda *_: None)
    assert guest.boots == ["same.vmtrace"] and guest.fetches == 1
    guest = CannedGuest(monkeypatch, {"same.vmtrace": SMALL_LINES, "flaky.vmtrace": SMALL_LINES})
    confirmation.confirm_findings(d, ["6.1"], log=lambda *_: None, smp=2)  # another guest: all again
    assert guest.boots == ["flaky.vmtrace", "same.vmtrace"]


@pytest.mark.parametrize("fail,fetch_error,reason", [
    ("the module did not load (insmod failed); the guest's console ends with:\n  | x", None, "the module did not load"),
    ("the guest printed nothing: no kernel, no module output", None, "the guest printed nothing"),
    (None, "cannot download Linux 6.1.0-57-amd64 (6.1.192-3) from the archive", "cannot download"),
])
def test_a_kernel_side_that_cannot_run_is_an_error_record_never_identical(tmp_path, monkeypatch, cli, fail,
                                                                          fetch_error, reason):
    d = finding_dir(tmp_path, {"one": SMALL, "two": SMALL})
    guest = CannedGuest(monkeypatch, {}, fail=fail, fetch_error=fetch_error)
    logged = []
    recs = confirmation.confirm_findings(d, ["6.1"], log=logged.append)
    assert [r["status"] for r in recs] == ["error", "error"] and all(reason in r["reason"] for r in recs)
    assert all(r["first_difference"] is None and r["kernel_replay"] is None for r in recs)
    assert guest.fetches == 1  # a kernel that cannot be fetched is tried once per series, not per finding
    assert sum(m.startswith("vmfrag: error: ") and reason in m for m in logged) == 2
    assert json.loads((d / "one.linux-6.1.json").read_text())["status"] == "error"


def test_a_findings_seconds_leave_out_the_shared_download_and_build(tmp_path, monkeypatch, cli):
    import time
    real, skew = time.monotonic, [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: real() + skew[0])
    d = finding_dir(tmp_path, {"first": SMALL})
    guest = CannedGuest(monkeypatch, {"first.vmtrace": SMALL_LINES})
    ready = guest.ready
    monkeypatch.setattr(confirmation, "ready_kernel", lambda s, log=print: (skew.__setitem__(0, 600.0), ready(s))[1])
    rec, = confirmation.confirm_findings(d, ["6.1"], log=lambda *_: None)
    assert rec["status"] == "identical" and rec["seconds"] < 600  # the "download" took 600 s


def test_confirm_findings_refuses_unknown_series_and_ignores_other_json(tmp_path, monkeypatch, cli):
    d = finding_dir(tmp_path, {"same": SMALL})
    (d / "notes.json").write_text('{"format": "vmfrag-bug"}')
    (d / "broken.json").write_text('{"format": "vmfrag-fin')
    with pytest.raises(ValueError, match="unknown kernel series 5.10"):
        confirmation.confirm_findings(d, ["5.10"])
    guest = CannedGuest(monkeypatch, {"same.vmtrace": SMALL_LINES})
    recs = confirmation.confirm_findings(d, ["6.1", "6.12"], log=lambda *_: None)
    assert [(r["finding"], r["kernel"]["series"]) for r in recs] == [("same", "6.1"), ("same", "6.12")]
    assert guest.fetches == 2 and (d / "same.linux-6.12.json").exists()


def test_a_record_that_contradicts_its_status_is_refused(tmp_path, monkeypatch, cli):
    from vmfrag_jobs.results import schemas
    d = finding_dir(tmp_path, {"moved": SMALL})
    CannedGuest(monkeypatch, {"moved.vmtrace": PLACED_ELSEWHERE})
    rec = confirmation.confirm_findings(d, ["6.1"], log=lambda *_: None)[0]
    assert schemas.validate(schemas.CONFIRMATION, 1, rec, "r") == []
    for change, problem in (({"status": "identical"}, "'identical' with a first_difference"),
                            ({"first_difference": None}, "'differs' without its first_difference"),
                            ({"status": "error", "reason": None}, "'error' without a reason"),
                            ({"status": "sure"}, "'status' is 'sure'"),
                            ({"kernel": {"series": "6.1", "smp": 1, "release": None}}, "without the kernel release")):
        assert any(problem in p for p in schemas.validate(schemas.CONFIRMATION, 1, dict(rec, **change), "r")), change


# --- a guest that cannot run: no QEMU needed ------------------------------------------------------------

def fake_kernel(tmp_path):
    k = packages.Kernel("6.1", "6.1.0-0-amd64", "0", [])
    k.root = tmp_path
    return k


@pytest.mark.parametrize("script,message", [
    ("true", "the guest printed nothing"),
    ("echo vmfrag-init: insmod failed", "the module did not load"),
    ("echo Kernel panic; exit 1", "qemu-system-x86_64 exited with 1"),
])
def test_a_guest_that_prints_nothing_or_no_module_fails_loudly(tmp_path, monkeypatch, script, message):
    monkeypatch.setattr(packages, "cache_dir", lambda: tmp_path / "cache")
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 64K\na 1 4K\n"))
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"\x7fELF")
    with pytest.raises(errors.KernelError, match=message):
        guest.guest_run(fake_kernel(tmp_path), ko, t, 1, qemu=lambda kernel, initrd, smp: ["sh", "-c", script])
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # the run's directory is gone


def test_a_guest_that_never_powers_off_is_killed_at_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(packages, "cache_dir", lambda: tmp_path / "cache")
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 64K\na 1 4K\n"))
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"\x7fELF")
    marker = tmp_path / "still-running"
    hung = ["sh", "-c", f"echo booting; sleep 2; touch {marker}"]
    with pytest.raises(errors.KernelError, match="did not power off within 1 s"):
        guest.boot(fake_kernel(tmp_path), ko, t, 1, timeout=1, qemu=lambda kernel, initrd, smp: hung)
    subprocess.run(["sleep", "2"])
    assert not marker.exists()  # killed, not left behind
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_initramfs_holds_init_busybox_the_module_and_the_ops(tmp_path):
    t = trace.read_trace(trace_file(tmp_path, "vmtrace 1\nregion 64K\na 1 4K\n"))
    ko = tmp_path / "m.ko"
    ko.write_bytes(b"module")
    image = guest.make_initramfs(tmp_path, ko, trace.encode_ops(t))
    names = subprocess.run(["cpio", "-t", "--quiet"], stdin=open(image, "rb"), capture_output=True,
                           text=True, check=True).stdout.split()
    assert {"init", "bin/busybox", "vmfrag_replay.ko", "ops.bin", "dev", "proc"} <= set(names)


# --- the real thing: Debian's Linux 6.1 under QEMU ------------------------------------------------------

def test_confirm_end_to_end_on_linux_6_1(repo, tmp_path):
    """Page-aligned ops (with a failure, a free, a purge) must come back exactly as vmfrag places
    them. The 32K-aligned op has a fit at 32K in a 20K hole: the kernel, searching for
    size + align - 1, finds it only if the hole's node is on its search path, so both answers are
    accepted there, and nothing else."""
    p = trace_file(tmp_path, """\
        vmtrace 1
        region 1M
        a 1 24K
        a 2 16K
        a 3 4K
        f 2
        p
        a 4 12K 32K
        a 5 4K
        a 6 2M
        """)
    r = subprocess.run([str(repo / "scripts" / "vmfrag"), "confirm", str(p), "--json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    from vmfrag_jobs.results import schemas
    assert (rep["format"], rep["finding"], schemas.validate(schemas.CONFIRMATION, 1, rep, "out")) == \
        ("vmfrag-confirmation", None, [])
    assert rep["kernel"]["release"].startswith("6.1.") and rep["kernel"]["package_version"]
    assert rep["allocations_compared"] == 6
    kr = rep["kernel_replay"]
    assert kr["format"] == "vmfrag-replay" and kr["ops"] == 8
    assert {k: kr["placements"][k] for k in ("1", "2", "3")} == {"1": 0, "2": 28 << 10, "3": 48 << 10}
    assert [(f["op"], f["kind"]) for f in kr["failures"]] == [(7, "no-virtual-space")]
    if rep["status"] == "identical":
        assert kr["placements"]["4"] == 32 << 10 and rep["ops_compared"] == 8
    else:
        assert rep["status"] == "differs" and rep["ops_compared"] == 6
        d = rep["first_difference"]
        assert (d["op"], d["kind"], d["vmfrag"], d["kernel"]) == \
            (5, "alignment-search", {"result": "ok", "offset": 32 << 10}, {"result": "ok", "offset": 64 << 10})
    assert rep["identical_before_difference"] >= 3


def test_a_module_that_cannot_load_is_a_loud_error_record_on_a_real_guest(tmp_path, monkeypatch, cli):
    """confirm_findings on the real Linux 6.1 (cached by the test above) with a module that cannot
    load: the finding's record is `error` with the reason, and the log says so."""
    bad = tmp_path / "vmfrag_replay.ko"
    bad.write_bytes(b"not a module")
    monkeypatch.setattr(module_build, "build_module", lambda kernel, log=print: bad)
    d = finding_dir(tmp_path, {"one": "vmtrace 1\nregion 64K\na 1 4K\n"})
    logged = []
    rec, = confirmation.confirm_findings(d, ["6.1"], log=logged.append)
    assert rec["status"] == "error" and "the module did not load" in rec["reason"]
    assert rec["kernel"]["release"].startswith("6.1.") and rec["first_difference"] is None
    assert json.loads((d / "one.linux-6.1.json").read_text())["status"] == "error"
    assert any(m.startswith("vmfrag: error: one could not be confirmed on Linux 6.1") for m in logged)


def test_help_lists_kernel_replay_and_confirm(repo):
    r = subprocess.run([str(repo / "scripts" / "vmfrag"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "kernel-replay" in r.stdout and "confirm" in r.stdout
    r = subprocess.run([str(repo / "scripts" / "vmfrag"), "confirm", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--kernel {6.1,6.12}" in r.stdout and "1 to 8" in r.stdout
