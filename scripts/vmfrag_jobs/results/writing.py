"""Writing result files the way the loader expects them, for the producers (ci, nightly, fuzz,
hunt-eval): validated before they are written, written atomically (a temporary file in the same
directory, then rename), so a job killed at any moment leaves every file either whole or absent.

    run = RunManifest(out_dir, "nightly", flavour="release", options={"hours": 6}, shard=(1, 2))
    with run.step("fuzz") as step:          # run.json rewritten: fuzz running
        write_result(out_dir / "fuzz/fuzz_ops.stats.json", stats)
        step.outputs.append("fuzz/fuzz_ops.stats.json")
    run.finish(exit_code=0)                   # run.json rewritten: finished, exit code

A step that raises is recorded as failed (and the exception propagates); one never entered stays
pending; `finish` is never reached by a killed job, which is how the report knows it was killed.
"""
import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from . import provenance as provenance_module
from . import schemas


class InvalidResult(ValueError):
    pass


def now_iso():
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def write_atomically(path, text):
    """Writes `text` (str, or bytes for a binary file) to `path` the way the C++ tools' OutputFile does (harness/files/output_file.h):
    a regular or absent target gets a temporary file beside it, renamed over it (removed on any
    error or interrupt); a symlink keeps being a symlink (the file it resolves to is replaced);
    a FIFO, a device or anything under /dev or /proc is written through, never replaced."""
    path = Path(path)
    special = str(path).startswith(("/dev/", "/proc/")) or (path.exists() and not path.is_file()
                                                             and not path.is_dir())
    binary = isinstance(text, bytes)
    if special:
        with open(path, "wb") if binary else open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.is_file():
            os.chmod(tmp, path.stat().st_mode & 0o7777)  # an existing file keeps its mode
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for reading
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_result(path, doc):
    """Validates a document of one of our formats (it must name its format and version) and
    writes it atomically; raises InvalidResult with every problem instead of writing a bad file."""
    fmt, version = schemas.identify(doc)
    if fmt is None or fmt == schemas.GOOGLE_BENCHMARK:
        raise InvalidResult(f"{path}: not a vmfrag result document (no 'format')")
    problems = schemas.validate(fmt, version, doc, str(path))
    if problems:
        raise InvalidResult("\n".join(problems))
    write_atomically(path, json.dumps(doc, indent=2) + "\n")


class Step:
    def __init__(self, record):
        self.record = record
        self.outputs = record["outputs"]


class RunManifest:
    """run.json of one job run, rewritten (atomically) at every change of state."""

    def __init__(self, out_dir, job, *, flavour, options, shard=None, steps=(), command=None, run_id=None,
                 perf_counters=None):
        self.path = Path(out_dir) / "run.json"
        started = now_iso()
        self.doc = {"format": schemas.RUN, "version": 1,
                    "run_id": run_id or f"{job}-{started}" + (f"-shard{shard[0]}of{shard[1]}" if shard else ""),
                    "job": job, "started": started, "finished": None,
                    "shard": {"index": shard[0], "count": shard[1]} if shard else None,
                    "command": list(command) if command else None,
                    "provenance": provenance_module.provenance(flavour, options, perf_counters),
                    "steps": [{"name": n, "status": "pending", "started": None, "finished": None, "outputs": []}
                              for n in steps],
                    "exit_code": None}
        self.save()

    def save(self):
        write_result(self.path, self.doc)

    def _record(self, name):
        for s in self.doc["steps"]:
            if s["name"] == name:
                return s
        s = {"name": name, "status": "pending", "started": None, "finished": None, "outputs": []}
        self.doc["steps"].append(s)
        return s

    @contextmanager
    def step(self, name):
        record = self._record(name)
        record.update(status="running", started=now_iso())
        self.save()
        try:
            yield Step(record)
        except BaseException:
            record.update(status="failed", finished=now_iso())
            self.save()
            raise
        record.update(status="done", finished=now_iso())
        self.save()

    def skip(self, name, why):
        self._record(name).update(status="skipped", note=why)
        self.save()

    def set_perf_counters(self, counters):
        self.doc["provenance"]["machine"]["perf_counters"] = dict(counters)
        self.save()

    def finish(self, exit_code):
        self.doc.update(finished=now_iso(), exit_code=exit_code)
        self.save()


def new_run_directory(parent, job):
    """A fresh directory for one run of `job`: PARENT/<job>-<UTC time>[-N]/, never an existing one."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        candidate = parent / (f"{job}-{stamp}" + (f"-{n}" if n else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent}: no free run directory name for {job}-{stamp}")


def point_latest(parent, run_dir):
    """PARENT/latest becomes a relative symlink to run_dir, replaced atomically (a symlink beside
    it, renamed over it), so a reader sees the old run or the new one, never neither. Anything else
    already called `latest` (a directory a user made) is left alone and False returned."""
    link = Path(parent) / "latest"
    if link.exists() and not link.is_symlink():
        return False
    tmp = link.with_name(f".latest.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(run_dir, link.parent), tmp)
    os.replace(tmp, link)
    return True
