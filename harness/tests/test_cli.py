"""The vmfrag CLI end to end, as a user or CI script meets it: replay of hand-written traces gives
hand-computed placements and failure kinds; malformed traces give exactly `FILE:LINE: error: ...`
and exit 2 with nothing on stdout and no output file; `gen` is byte-for-byte deterministic;
`minimize` shrinks a checkerboard failure of thousands of ops to a few dozen; `--differential`
agrees with the reference model on every workload x 20 seeds (at a reduced op count: the full-size
runs are `scripts/vmfrag ci`'s job); the timeline has one JSON line per op."""
import hashlib
import json
import subprocess

import pytest


def run(cli, *args, cwd=None):
    return subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


HAND_TRACE = """\
vmtrace 1
region 64K
guard 1
lazy 0
a 0 4K        # [0, 8K)
a 1 5000      # 2 pages + guard: [8K, 20K)
a 2 4K 16K    # first 16K-aligned free start: 32K
f 1
a 3 8K        # 12K with the guard: back at 8K
a 4 28K       # needs 32K; 36K free but in 12K + 24K holes
a 5 100K
f 4           # a failed id: no-op
"""


def test_replay_hand_trace(cli, tmp_path):
    t = write(tmp_path, "hand.vmtrace", HAND_TRACE)
    r = run(cli, "replay", t, "--json", "--differential", "--check-every", "1")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["placements"] == {"0": 0, "1": 8192, "2": 32768, "3": 8192}
    assert [(f["op"], f["line"], f["kind"]) for f in j["failures"]] == [
        (5, 10, "virtual-fragmentation"), (6, 11, "no-virtual-space")]
    assert j["failures"][0]["free_bytes"] == 36 * 1024
    assert j["failures"][0]["largest_free_bytes"] == 24 * 1024
    assert (j["ops"], j["allocs"], j["frees"]) == (8, 4, 1)
    assert j["peak_live_bytes"] == 4 * 4096
    assert j["final"]["free_extents"] == 2
    assert j["final"]["external_fragmentation"] == pytest.approx(1 - 24 / 36)
    assert j["divergence"] is None and j["invariant_violation"] is None


def test_replay_human_summary_names_the_first_failure(cli, tmp_path):
    t = write(tmp_path, "hand.vmtrace", HAND_TRACE)
    r = run(cli, "replay", t)
    assert r.returncode == 0
    assert "first failure: op 5 (line 10) id 4 size 28672: virtual-fragmentation" in r.stdout


MALFORMED = {
    "truncated": ("vmtrace 1\nregion 64K\na 0\n", 3),
    "wrong_magic": ("vmtrace2 1\nregion 64K\n", 1),
    "wrong_version": ("vmtrace 2\nregion 64K\n", 1),
    "bad_suffix": ("vmtrace 1\nregion 64Q\n", 2),
    "huge_number": ("vmtrace 1\nregion 64K\na 0 99999999999999999999\n", 3),
    "huge_suffix": ("vmtrace 1\nregion 64K\na 0 17179869184T\n", 3),
    "duplicate_id": ("vmtrace 1\nregion 64K\na 0 4K\na 0 4K\n", 4),
    "unknown_free": ("vmtrace 1\nregion 64K\nf 3\n", 3),
    "binary": ("vmtrace 1\nregion 64K\na 0 4K\n\x00\x01\x02garbage\n", 4),
    "directive_after_op": ("vmtrace 1\nregion 64K\na 0 4K\nguard 0\n", 4),
    "missing_region": ("vmtrace 1\na 0 4K\n", 2),
    "empty": ("", 1),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_trace_is_a_clean_input_error(cli, tmp_path, name):
    text, line = MALFORMED[name]
    t = tmp_path / f"{name}.vmtrace"
    t.write_bytes(text.encode("latin-1"))
    timeline = tmp_path / "timeline.jsonl"
    r = run(cli, "replay", t, "--json", "--timeline", timeline)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith(f"{t}:{line}: error: "), r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert not timeline.exists()  # nothing half-written
    assert [p.name for p in tmp_path.iterdir()] == [t.name]


def test_physical_ops_replay_in_every_backing_also_differentially(cli, tmp_path):
    t = write(tmp_path, "k.vmtrace", "vmtrace 1\nregion 64M\na 0 4K\nk 1 8K\nm 2 3\nh 3 2M\nf 1\nf 2\nf 3\n")
    for backing in ("none", "anon", "memfd"):
        r = run(cli, "replay", t, "--differential", "--backing", backing, "--json")
        assert r.returncode == 0, (backing, r.stderr)
        assert json.loads(r.stdout)["divergence"] is None
    for backing in ("none", "anon", "memfd"):
        r = run(cli, "replay", t, "--json", "--backing", backing, "--check-every", "1")
        assert r.returncode == 0, (backing, r.stderr)
        j = json.loads(r.stdout)
        assert j["backing"] == backing
        assert (j["allocs"], j["frees"]) == (4, 3), (backing, j)
    assert run(cli, "replay", t, "--backing", "bogus").returncode == 2


def test_workloads_with_physical_ops_replay_in_every_backing(cli, tmp_path, repo):
    for name in workload_names(cli, physical=True):
        t = tmp_path / f"{name}.vmtrace"
        assert run(cli, "gen", name, "--seed", 1, "--ops", 4000, "-o", t, cwd=repo).returncode == 0
        for backing in ("none", "anon", "memfd"):
            r = run(cli, "replay", t, "--backing", backing, "--check-every", "500")
            assert r.returncode == 0, f"{name} {backing}: {r.stderr}"


def test_usage_errors_exit_2(cli, tmp_path):
    assert run(cli).returncode == 2
    assert run(cli, "replay").returncode == 2
    assert run(cli, "gen", "checkerboard").returncode == 2  # --seed is required
    r = run(cli, "gen", "no_such_workload", "--seed", "1", "-o", tmp_path / "x.vmtrace")
    assert r.returncode == 2 and "no_such_workload" in r.stderr
    assert not (tmp_path / "x.vmtrace").exists()
    r = run(cli, "replay", tmp_path / "missing.vmtrace")
    assert r.returncode == 2 and r.stderr.startswith(f"{tmp_path / 'missing.vmtrace'}: error: cannot open")
    assert run(cli, "replay", tmp_path / "missing.vmtrace", "--backing", "memfd").returncode == 2


def workload_names(cli, physical=False):
    r = run(cli, "workloads", "--json")
    assert r.returncode == 0
    return [w["name"] for w in json.loads(r.stdout) if w["needs_physical"] == physical]


def test_workload_list_has_the_kernel_cases(cli):
    names = workload_names(cli) + workload_names(cli, physical=True)
    for case in ("fix_size_alloc_test", "full_fit_alloc_test", "long_busy_list_alloc_test",
                 "random_size_alloc_test", "fix_align_alloc_test", "random_size_align_alloc_test",
                 "align_shift_alloc_test", "pcpu_alloc_test", "kvfree_rcu_1_arg_vmalloc_test",
                 "kvfree_rcu_2_arg_vmalloc_test", "vm_map_ram_test", "no_block_alloc_test",
                 "vrealloc_test"):
        assert case in names


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_gen_is_byte_for_byte_deterministic(cli, tmp_path, repo):
    for name in workload_names(cli):
        a, b, c = (tmp_path / f"{name}.{i}" for i in range(3))
        for out, seed in ((a, 7), (b, 7), (c, 8)):
            r = run(cli, "gen", name, "--seed", seed, "--ops", 3000, "-o", out, cwd=repo)
            assert r.returncode == 0, r.stderr
        assert sha(a) == sha(b), name
        if name not in ("checkerboard", "fix_size_alloc_test", "full_fit_alloc_test",
                        "long_busy_list_alloc_test", "fix_align_alloc_test",
                        "align_shift_alloc_test", "no_block_alloc_test", "vrealloc_test"):
            assert sha(a) != sha(c), f"{name}: seed had no effect"


def test_minimize_shrinks_checkerboard_to_a_few_dozen_ops(cli, tmp_path, repo):
    big = tmp_path / "cb.vmtrace"
    assert run(cli, "gen", "checkerboard", "--seed", 1, "--ops", 5000, "-o", big, cwd=repo).returncode == 0
    full = json.loads(run(cli, "replay", big, "--json").stdout)
    assert full["ops"] >= 1000
    assert full["failures"][0]["kind"] == "virtual-fragmentation"
    small = tmp_path / "min.vmtrace"
    r = run(cli, "minimize", big, "-o", small)
    assert r.returncode == 0, r.stderr
    text = small.read_text()
    ops = [ln for ln in text.splitlines() if ln and ln[0] in "afp"]
    assert 3 <= len(ops) <= 48, text
    assert "# minimized by vmfrag minimize" in text
    res = json.loads(run(cli, "replay", small, "--json", "--differential").stdout)
    assert res["failures"][0]["kind"] == "virtual-fragmentation"
    assert res["failures"][0]["op"] == res["ops"] - 1


def test_minimize_without_a_failure_is_an_input_error(cli, tmp_path):
    t = write(tmp_path, "ok.vmtrace", "vmtrace 1\nregion 1M\na 0 4K\n")
    r = run(cli, "minimize", t, "-o", tmp_path / "out.vmtrace")
    assert r.returncode == 2 and "nothing to minimize" in r.stderr
    assert not (tmp_path / "out.vmtrace").exists()


def test_timeline_has_one_line_per_op(cli, tmp_path):
    t = write(tmp_path, "hand.vmtrace", HAND_TRACE)
    tl = tmp_path / "tl.jsonl"
    assert run(cli, "replay", t, "--timeline", tl).returncode == 0
    lines = [json.loads(ln) for ln in tl.read_text().splitlines()]
    assert [ln["op"] for ln in lines] == list(range(8))
    assert lines[5]["result"] == "virtual-fragmentation"
    assert lines[0]["live_bytes"] == 4096


@pytest.mark.parametrize("seed", range(1, 21))
def test_differential_agrees_on_every_workload(cli, tmp_path, repo, seed):
    for name in workload_names(cli) + workload_names(cli, physical=True):
        t = tmp_path / f"{name}.vmtrace"
        r = run(cli, "gen", name, "--seed", seed, "--ops", 4000, "-o", t, cwd=repo)
        assert r.returncode == 0, r.stderr
        r = run(cli, "replay", t, "--differential", "--json", "--maps", "0")
        assert r.returncode == 0, f"{name} seed {seed}: {r.stderr}"


def test_import_malloclab_and_vmallocinfo(cli, tmp_path, repo):
    out = tmp_path / "ml.vmtrace"
    r = run(cli, "import-malloclab", repo / "harness" / "tests" / "data" / "tiny.rep", "-o", out)
    assert r.returncode == 0, r.stderr
    assert run(cli, "replay", out, "--differential").returncode == 0
    out2 = tmp_path / "vi.vmtrace"
    r = run(cli, "import-vmallocinfo", repo / "corpus" / "profiles" / "vmallocinfo-sample.txt", "-o", out2)
    assert r.returncode == 0, r.stderr
    assert run(cli, "replay", out2, "--differential").returncode == 0
    bad = write(tmp_path, "bad.rep", "not a header\n")
    r = run(cli, "import-malloclab", bad, "-o", tmp_path / "bad.vmtrace")
    assert r.returncode == 2 and r.stderr.startswith(f"{bad}:1: error: ")
    assert not (tmp_path / "bad.vmtrace").exists()
