"""Finds, parses and validates the result files of one or more results directories.

A results directory is whatever a job wrote: the loader walks it for `*.json` and `*.jsonl`, tells
each file's format by its `format` field (or, for the legacy and foreign formats, by its keys; see
schemas.py), validates it and keeps it with its problems. Nothing is dropped silently: a file cut
short by a killed job is kept as *damaged* with what could be read (the complete lines of a
timeline; for a JSON document, the format its first bytes name), and every gap the directory shows
(no run.json, a run without an end, a step still running, an output the run lists but that is not
there, a finding without its trace) becomes a line of `ResultsDir.problems`.
"""
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import schemas
from .timeline import METRICS, Envelope

RESULT_SUFFIXES = (".json", ".jsonl")
# Written by the report itself or by tools, never results: index.html, the history, pytest's XML.
NOT_RESULTS = {"index.html", "history.sqlite"}
SKIPPED_DIRS = {"corpus", "crashes", "__pycache__"}
NUMERIC_TIMELINE_FIELDS = ("op",) + METRICS
NUMBER_TYPES = {int, float}
FORMAT_PREFIX = re.compile(r'"format"\s*:\s*"([a-z0-9-]+)"')


@dataclass
class ResultFile:
    root: Path            # the results directory it was found in
    rel: str              # path relative to root, '/'-separated
    format: str = None    # schemas.* name, or None when the file is none of ours
    version: int = None
    data: object = None   # the parsed document; for a timeline, {"header": ..., "records": [...]}
    problems: list = field(default_factory=list)
    damaged: bool = False  # could not be read whole
    notes: list = field(default_factory=list)

    @property
    def path(self):
        return self.root / self.rel

    @property
    def legacy(self):
        return self.version == schemas.LEGACY


@dataclass
class ResultsDir:
    roots: list
    files: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def of(self, fmt):
        return [f for f in self.files if f.format == fmt and f.data is not None]

    def damaged(self):
        return [f for f in self.files if f.damaged]

    def confirmations_of(self, finding):
        """The vmfrag-confirmation records beside a finding's sidecar that name it, by kernel series."""
        found = [f for f in self.of(schemas.CONFIRMATION)
                 if f.root == finding.root and _beside(f, finding) and f.data.get("finding") == finding.data.get("id")]
        return sorted(found, key=lambda f: (str((f.data.get("kernel") or {}).get("series")), f.rel))

    def find(self, root, rel):
        for f in self.files:
            if f.root == root and f.rel == rel:
                return f
        return None


def _beside(a, b):
    """Whether two result files are in the same directory."""
    return Path(a.rel).parent == Path(b.rel).parent


def _json_error(e, text):
    where = f"line {e.lineno} column {e.colno}"
    if e.pos >= len(text.rstrip()):
        return f"truncated: the JSON ends at byte {len(text)} before the document is complete ({where})"
    return f"invalid JSON at {where}: {e.msg}"


def load_json_file(root, rel):
    rf = ResultFile(root=root, rel=rel)
    try:
        text = rf.path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        rf.damaged = True
        rf.problems.append(f"{rel}: cannot be read: {e.strerror}")
        return rf
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        rf.damaged = True
        named = FORMAT_PREFIX.search(text[:4096])
        rf.format = named.group(1) if named else None
        rf.problems.append(f"{rel}: {_json_error(e, text)}"
                           + (f"; it started as a {rf.format} file" if rf.format else ""))
        return rf
    rf.format, rf.version = schemas.identify(doc)
    if rf.format is None:
        return rf
    rf.data = doc
    if rf.legacy:
        rf.notes.append(f"{rf.format} legacy version 0 (written before result files had format and version)")
    rf.problems += schemas.validate(rf.format, rf.version, doc, rel)
    if rf.version is not None and rf.version > schemas.CURRENT_VERSION.get(rf.format, 0):
        rf.data = None  # never guess at a newer format's meaning
    return rf


def load_timeline_file(root, rel):
    """JSON Lines from `vmfrag replay --timeline`, streamed into an Envelope (timeline.py), so a
    timeline of millions of ops is never held whole. Keeps every complete, valid line; a last line
    cut short (no newline, not JSON) marks the file damaged but keeps the rest."""
    rf = ResultFile(root=root, rel=rel, format=schemas.TIMELINE)
    header, envelope = None, Envelope()
    bad_lines = 0
    decode = json.JSONDecoder().raw_decode
    required = frozenset(schemas.TIMELINE_RECORD_FIELDS)

    def skip(i, why):
        nonlocal bad_lines
        bad_lines += 1
        if bad_lines <= 3:
            rf.problems.append(f"{rel}:{i}: {why}; line skipped")

    try:
        with open(rf.path, encoding="utf-8", errors="replace", newline="\n") as f:
            for i, line in enumerate(f, 1):
                complete = line.endswith("\n")
                line = line.strip()
                if not line:
                    continue
                try:
                    obj, end = decode(line)
                    if end != len(line):
                        raise ValueError("trailing text")
                except ValueError:
                    if not complete:
                        rf.damaged = True
                        rf.problems.append(f"{rel}: truncated: the last line ({i}) is incomplete; "
                                           f"{envelope.ops} complete records kept")
                    else:
                        skip(i, "not a JSON object")
                    continue
                if i == 1 and isinstance(obj, dict) and "format" in obj:
                    header = obj
                    if obj.get("format") != schemas.TIMELINE:
                        rf.problems.append(f"{rel}: header names format '{obj.get('format')}', not {schemas.TIMELINE}")
                    continue
                # Types are checked in full on the first records; after that, the keys (a timeline
                # has millions of lines) and whatever the envelope's comparisons reject.
                if envelope.ops < 100:
                    problems = schemas.validate_timeline_record(obj, f"{rel}:{i}")
                    if problems:
                        skip(i, problems[0].split(": ", 1)[1])
                        continue
                elif not isinstance(obj, dict) or not required <= obj.keys():
                    skip(i, "not a timeline record (fields missing)")
                    continue
                elif {type(obj[k]) for k in NUMERIC_TIMELINE_FIELDS} - NUMBER_TYPES or type(obj["result"]) is not str:
                    skip(i, "a field has the wrong type")
                    continue
                envelope.add(obj)
    except OSError as e:
        rf.damaged = True
        rf.problems.append(f"{rel}: cannot be read: {e.strerror}")
        return rf
    if bad_lines > 3:
        rf.problems.append(f"{rel}: {bad_lines} lines skipped in all")
    rf.version = header.get("version") if header else schemas.LEGACY
    if header is None:
        rf.notes.append("timeline legacy version 0 (no header line; as `vmfrag replay --timeline` writes it)")
    elif not isinstance(rf.version, int) or rf.version > schemas.CURRENT_VERSION[schemas.TIMELINE]:
        rf.problems.append(f"{rel}: timeline version {rf.version!r} is not one this reader knows")
    elif isinstance(header.get("every"), int) and header["every"] > 1:
        rf.notes.append(f"timeline sampled: every {header['every']} ops, every failed op and the last")
    rf.data = {"header": header, "ops": envelope.ops, "envelope": envelope}
    return rf


def _walk(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name in NOT_RESULTS or not name.endswith(RESULT_SUFFIXES):
                continue
            yield Path(dirpath, name).relative_to(root).as_posix()


def load_dir(root, results=None):
    """Loads one results directory into `results` (a new ResultsDir unless given, so shards can be
    loaded into one)."""
    root = Path(root).resolve()
    results = results or ResultsDir(roots=[])
    results.roots.append(root)
    if not root.is_dir():
        results.problems.append(f"{root}: no such results directory")
        return results
    for rel in _walk(root):
        rf = load_timeline_file(root, rel) if rel.endswith(".jsonl") else load_json_file(root, rel)
        if rf.format is not None or rf.damaged:
            results.files.append(rf)
    _check_completeness(root, results)
    return results


def load(roots):
    """Loads several directories as one run (the shards of a nightly run). A directory with no
    result file at all, beside others that have some, is the merge's output directory: it is not
    reported as missing its manifest."""
    results = ResultsDir(roots=[])
    for root in roots:
        load_dir(root, results)
    if len(results.roots) > 1:
        empty = {r.name for r in results.roots if not any(f.root == r for f in results.files)}
        results.problems = [p for p in results.problems
                            if not (p.split(":", 1)[0] in empty and "no run.json" in p)]
    return results


def _check_completeness(root, results):
    """What the directory promises but does not hold: the run manifest's own account of itself,
    the outputs it lists, the traces findings and ci records point to."""
    label = root.name
    runs = [f for f in results.files if f.root == root and f.format == schemas.RUN]
    if not runs:
        results.problems.append(f"{label}: no run.json: the job kind, times and provenance of this run are unknown")
    for run in runs:
        if run.data is None:
            results.problems.append(f"{label}/{run.rel}: the run manifest is unreadable (the job was probably killed while writing it)")
            continue
        if run.data.get("finished") is None:
            results.problems.append(f"{label}: the run started {run.data.get('started')} and has no end time: "
                                    "it was killed or is still running; what follows is what it had written")
        for step in run.data.get("steps") or []:
            status = step.get("status")
            if status == "running":
                results.problems.append(f"{label}: step '{step.get('name')}' was still running: its results are partial")
            elif status == "pending":
                results.problems.append(f"{label}: step '{step.get('name')}' never ran: no results for it")
            for out in step.get("outputs") or []:
                if not (root / out).exists():
                    results.problems.append(f"{label}: step '{step.get('name')}' lists {out}, which is missing")
    for f in results.files:
        if f.root != root or f.data is None:
            continue
        if f.format == schemas.FINDING:
            trace = f.data.get("trace")
            if isinstance(trace, str) and not (root / Path(f.rel).parent / trace).exists():
                results.problems.append(f"{label}/{f.rel}: its trace {trace} is missing")
        if f.format == schemas.CONFIRMATION and isinstance(f.data.get("finding"), str):
            if not any(g.root == root and g.format == schemas.FINDING and g.data is not None and _beside(g, f)
                       and g.data.get("id") == f.data["finding"] for g in results.files):
                results.problems.append(f"{label}/{f.rel}: a kernel confirmation of finding {f.data['finding']}, "
                                        "whose sidecar is not beside it (missing or damaged)")
        if f.format == schemas.CONFIRMATION and f.data.get("status") == "error":
            series = (f.data.get("kernel") or {}).get("series")
            results.problems.append(f"{label}/{f.rel}: the kernel confirmation on Linux {series} could not run: "
                                    f"{str(f.data.get('reason')).splitlines()[0]}")
        if f.format == schemas.BUG:
            repro = f.data.get("reproducer")
            if isinstance(repro, str) and not (root / Path(f.rel).parent / repro).exists():
                results.problems.append(f"{label}/{f.rel}: its reproducer {repro} is missing")
        if f.format == schemas.CI and not f.legacy:
            for rec in f.data.get("workloads") or []:
                for key in ("replay", "timeline"):
                    rel = rec.get(key) if isinstance(rec, dict) else None
                    if isinstance(rel, str) and not (root / rel).exists():
                        results.problems.append(f"{label}/{f.rel}: {rec.get('workload')} seed {rec.get('seed')}: "
                                                f"its {key} {rel} is missing")
    for f in results.files:
        if f.root == root:
            results.problems += [p if p.startswith(label) else f"{label}/{p}" for p in f.problems]
