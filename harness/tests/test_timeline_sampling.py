"""`replay --timeline-every N`: the timeline the ci and nightly jobs keep for a failing run. It must
hold every N-th op, every op that failed and the last op — so the report's charts keep every failure
and the end state — after a header line naming N; N = 1 is the full timeline without a header. The
results layer reads the sampled file as timeline version 1 and says it was sampled."""
import json
import subprocess

from vmfrag_jobs.results import loading, schemas


def run(cli, *args):
    return subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)


def test_sampled_timeline_keeps_every_nth_every_failure_and_the_last(cli, tmp_path):
    trace = tmp_path / "saw.vmtrace"
    assert run(cli, "gen", "sawtooth", "--seed", "3", "--ops", "5000", "-o", trace).returncode == 0
    full, sampled = tmp_path / "full.jsonl", tmp_path / "sampled.jsonl"
    assert run(cli, "replay", trace, "--timeline", full).returncode == 0
    assert run(cli, "replay", trace, "--timeline", sampled, "--timeline-every", "64").returncode == 0
    every = [json.loads(ln) for ln in full.read_text().splitlines()]
    header, *kept = [json.loads(ln) for ln in sampled.read_text().splitlines()]
    assert header == {"format": "vmfrag-timeline", "version": 1, "every": 64}
    expected = [r for r in every if r["op"] % 64 == 0 or r["result"] != "ok" or r is every[-1]]
    assert any(r["result"] != "ok" and r["op"] % 64 for r in every), "the trace should fail between samples"
    assert kept == expected  # the same records, byte for byte in value
    rf = loading.load_timeline_file(tmp_path, "sampled.jsonl")
    assert (rf.format, rf.version, rf.problems) == (schemas.TIMELINE, 1, [])
    assert rf.data["envelope"].failed_ops == sum(r["result"] != "ok" for r in every)
    assert any("every 64" in n for n in rf.notes)


def test_timeline_every_is_checked(cli, tmp_path):
    trace = tmp_path / "t.vmtrace"
    trace.write_text("vmtrace 1\nregion 64K\na 0 4K\n")
    for bad in ("0", "x", "-1"):
        r = run(cli, "replay", trace, "--timeline", tmp_path / "tl", "--timeline-every", bad)
        assert r.returncode == 2 and r.stderr.startswith("vmfrag: error: --timeline-every"), r.stderr
        assert not (tmp_path / "tl").exists()
