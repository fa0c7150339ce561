"""The GitHub workflows (.github/workflows/) cannot run here, so they are made correct by
construction: each is checked against the structure GitHub Actions accepts (the keys a workflow,
a job and a step may have, `needs` naming real jobs, `${{ matrix.X }}` naming a matrix axis, every
action pinned to a major version), the ClusterFuzzLite ones against the modes issue 14 asks for, and
every `scripts/vmfrag` command in them is parsed by the real argument parser. The nightly matrix
and its merge are then run for real, command for command, with only the budget replaced
(NIGHTLY_ARGS, as the workflow's dispatch input does): the shards partition one plan and the merge
makes one report."""
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vmfrag_jobs import cli

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
WORKFLOW_KEYS = {"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"}
JOB_KEYS = {"name", "needs", "if", "runs-on", "container", "services", "timeout-minutes", "strategy", "steps",
            "concurrency", "permissions", "env", "defaults", "outputs", "environment", "continue-on-error", "uses",
            "with", "secrets"}
STEP_KEYS = {"name", "id", "if", "uses", "run", "with", "env", "shell", "working-directory", "continue-on-error",
             "timeout-minutes"}
EVENTS = {"push", "pull_request", "workflow_dispatch", "schedule", "workflow_call", "release"}
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})$")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
CRON = re.compile(r"^(\S+\s+){4}\S+$")
# The budget a test can afford, for the nightly workflow's NIGHTLY_ARGS.
TEST_NIGHTLY_ARGS = "--seconds 10 --ops 3000 --fuzz-slice 2 --hunt-trial 2 --stress-ops 240 --seeds 1 --jobs 1 --no-kernel"


def load(name):
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def all_workflows():
    return sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def steps(doc):
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, job, step


def vmfrag_commands(script):
    """The scripts/vmfrag command lines of a `run:` script (one per line)."""
    return [line.strip() for line in script.splitlines() if line.strip().startswith("scripts/vmfrag ")]


def test_the_workflows_issue_14_asks_for_exist():
    assert {"ci.yml", "cflite_pr.yml", "cflite_batch.yml", "nightly.yml"} <= set(all_workflows())


@pytest.mark.parametrize("name", all_workflows())
def test_workflow_structure(name):
    doc = load(name)
    assert set(doc) <= WORKFLOW_KEYS, set(doc) - WORKFLOW_KEYS
    assert doc.get("name") and doc.get("jobs")
    events = doc["on"] if isinstance(doc["on"], dict) else {e: None for e in ([doc["on"]] if isinstance(doc["on"], str) else doc["on"])}
    assert set(events) <= EVENTS, events
    for entry in (events.get("schedule") or []):
        assert CRON.match(entry["cron"]), entry
    assert doc.get("permissions") == "read-all"  # least privilege; actions get a token explicitly
    for job_name, job in doc["jobs"].items():
        assert set(job) <= JOB_KEYS, (job_name, set(job) - JOB_KEYS)
        assert "runs-on" in job and job.get("steps"), job_name
        needs = job.get("needs", [])
        for n in [needs] if isinstance(needs, str) else needs:
            assert n in doc["jobs"], (job_name, n)
        axes = set(((job.get("strategy") or {}).get("matrix") or {}).keys())
        text = yaml.safe_dump(job)
        for expr in EXPRESSION.findall(text):
            for axis in re.findall(r"\bmatrix\.([\w-]+)", expr):
                assert axis in axes, (job_name, expr)
        for step in job["steps"]:
            assert set(step) <= STEP_KEYS, (job_name, set(step) - STEP_KEYS)
            assert ("uses" in step) != ("run" in step), (job_name, step)
            if "uses" in step:
                assert PINNED.match(step["uses"]), step["uses"]


@pytest.mark.parametrize("name", all_workflows())
def test_every_vmfrag_command_parses(name):
    for _, job, step in steps(load(name)):
        for line in vmfrag_commands(step.get("run", "")):
            # Expressions become a value of their kind; ${VAR:-default} its default.
            line = EXPRESSION.sub("1", line)
            line = re.sub(r"\$\{\w+:-(.*?)\}", r"\1", line)
            argv = shlex.split(line)[1:]
            argv = [a for a in argv if "*" not in a] if "--merge" in argv else argv
            if "--merge" in argv and argv[-1] == "--merge":
                argv.append("results/x")
            try:
                cli.parser().parse_args(argv)
            except SystemExit as e:
                pytest.fail(f"{name}: {line!r} does not parse (exit {e.code})")


def test_clusterfuzzlite_modes():
    pr = load("cflite_pr.yml")
    (run,) = [s for _, _, s in steps(pr) if "run_fuzzers" in s.get("uses", "")]
    assert run["with"]["mode"] == "code-change"
    assert "pull_request" in pr["on"]
    batch = load("cflite_batch.yml")
    modes = {s["with"]["mode"] for _, _, s in steps(batch) if "run_fuzzers" in s.get("uses", "")}
    assert modes == {"batch", "prune"}
    assert any(s["with"].get("upload-build") for _, _, s in steps(batch) if "build_fuzzers" in s.get("uses", ""))
    for doc in (pr, batch):
        for _, _, s in steps(doc):
            if "build_fuzzers" in s.get("uses", ""):
                assert s["with"]["language"] == "c++"
    assert yaml.safe_load((WORKFLOWS.parents[1] / ".clusterfuzzlite" / "project.yaml").read_text())["language"] == "c++"


def substitute(script, matrix):
    def value(m):
        expr = m.group(1)
        hit = re.fullmatch(r"matrix\.([\w-]+)", expr)
        if hit:
            return str(matrix[hit.group(1)])
        raise AssertionError(f"no test value for ${{{{ {expr} }}}}")
    return EXPRESSION.sub(value, script)


def test_the_nightly_matrix_and_merge_run_as_written(repo, tmp_path):
    doc = load("nightly.yml")
    shard_job, merge_job = doc["jobs"]["shard"], doc["jobs"]["merge"]
    assert merge_job["needs"] == "shard"
    (os.symlink(repo / "scripts", tmp_path / "scripts"))
    env = dict(os.environ, NIGHTLY_ARGS=TEST_NIGHTLY_ARGS)
    shards = shard_job["strategy"]["matrix"]["shard"]
    for shard in shards:
        for step in shard_job["steps"]:
            if vmfrag_commands(step.get("run", "")):
                script = substitute(step["run"], {"shard": shard})
                r = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
                assert r.returncode == 0, script + "\n" + r.stdout + r.stderr
        # what actions/download-artifact@v4 does with a pattern: one directory per artifact name
        (upload,) = [s for s in shard_job["steps"] if "upload-artifact" in s.get("uses", "")]
        name = substitute(upload["with"]["name"], {"shard": shard})
        src = tmp_path / substitute(upload["with"]["path"], {"shard": shard})
        (download,) = [s for s in merge_job["steps"] if "download-artifact" in s.get("uses", "")]
        shutil.copytree(src, tmp_path / download["with"]["path"] / name)
    plans = [json.loads((tmp_path / "results" / f"shard-{s}" / "plan.json").read_text()) for s in shards]
    assert all(p["units"] == plans[0]["units"] for p in plans)
    covered = []
    for s in shards:
        out = tmp_path / "results" / f"shard-{s}"
        status = json.loads((out / "nightly.json").read_text())
        done = {json.loads(p.read_text())["unit"]["id"] for p in (out / "units").glob("*.json")}
        covered.append(done | set(status["not_run"]))
    assert sum(len(c) for c in covered) == len(set().union(*covered))  # disjoint
    assert set().union(*covered) == {u["id"] for u in plans[0]["units"]}  # the whole plan
    (merge_step,) = [s for s in merge_job["steps"] if vmfrag_commands(s.get("run", ""))]
    r = subprocess.run(["bash", "-e", "-c", merge_step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    html = (tmp_path / "results" / "merged" / "index.html").read_text()
    for s in shards:
        assert f"shard{s}of{len(shards)}" in html or f"nightly-shard-{s}" in html
