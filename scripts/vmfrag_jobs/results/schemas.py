"""The result-file formats the results layer reads, and their validation.

Every result file names its format and version (`"format": "vmfrag-finding", "version": 1`). Two
kinds of file predate that rule and are accepted as *legacy* (version 0), recognised by their keys:
`ci.json` as written by the ci job before issue 13, and replay JSON without `format` (older
`vmfrag replay --json`). Timelines are JSON Lines as `vmfrag replay --timeline` writes them: version 0
has no header line; version 1 starts with a header object that has `format` and `version`.
Google Benchmark JSON has no version of ours: it is recognised by `context` + `benchmarks`.

reports/README.md documents every field. A validator returns a list of problems (empty = valid):
the loader keeps a file with problems and says what is wrong, it never drops it silently.
"""
from numbers import Real

RUN = "vmfrag-run"
CI = "vmfrag-ci"
REPLAY = "vmfrag-replay"
TIMELINE = "vmfrag-timeline"
FINDING = "vmfrag-finding"
BUG = "vmfrag-bug"
FUZZ_STATS = "vmfrag-fuzz-stats"
HUNT_EVAL = "vmfrag-hunt-eval"
BENCH_RATIOS = "vmfrag-bench-ratios"
GOOGLE_BENCHMARK = "google-benchmark"
# The nightly job's own files (issue 14): its plan, one record per finished unit, its end status.
NIGHTLY_PLAN = "vmfrag-nightly-plan"
NIGHTLY_UNIT = "vmfrag-nightly-unit"
NIGHTLY_STATUS = "vmfrag-nightly-status"

LEGACY = 0
# The highest version of each format this reader understands.
CURRENT_VERSION = {RUN: 1, CI: 2, REPLAY: 1, TIMELINE: 1, FINDING: 1, BUG: 1, FUZZ_STATS: 1,
                   HUNT_EVAL: 1, BENCH_RATIOS: 1, GOOGLE_BENCHMARK: 1,
                   NIGHTLY_PLAN: 1, NIGHTLY_UNIT: 1, NIGHTLY_STATUS: 1}

JOB_KINDS = ("ci", "nightly", "adhoc")
STEP_STATES = ("pending", "running", "done", "failed", "skipped")
FINDING_KINDS = ("virtual-fragmentation", "physical-fragmentation")
BUG_KINDS = ("sanitizer", "invariant-violation", "divergence", "crash", "timeout", "oom", "misuse-unreported")
MAP_STATES = ("free", "busy", "lazy")

INT = (int,)
NUM = (Real,)
STR = (str,)
OPT_STR = (str, type(None))
OPT_INT = (int, type(None))
OPT_NUM = (Real, type(None))
LIST = (list,)
DICT = (dict,)
OPT_DICT = (dict, type(None))
BOOL = (bool,)


def _type_name(types):
    names = {int: "integer", Real: "number", str: "string", list: "array", dict: "object", bool: "boolean",
             type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def check_fields(obj, spec, where):
    """Required fields of `obj` with their types: spec is {name: types}. bool is not an integer."""
    problems = []
    if not isinstance(obj, dict):
        return [f"{where}: expected an object, got {type(obj).__name__}"]
    for name, types in spec.items():
        if name not in obj:
            problems.append(f"{where}: missing field '{name}'")
            continue
        value = obj[name]
        if isinstance(value, bool) and bool not in types:
            problems.append(f"{where}: '{name}' should be {_type_name(types)}, got boolean")
        elif not isinstance(value, types):
            problems.append(f"{where}: '{name}' should be {_type_name(types)}, got {type(value).__name__}")
    return problems


def check_choice(obj, name, choices, where):
    value = obj.get(name) if isinstance(obj, dict) else None
    if value is not None and value not in choices:
        return [f"{where}: '{name}' is '{value}', expected one of {', '.join(choices)}"]
    return []


PROVENANCE = {"commit": OPT_STR, "flavour": OPT_STR, "options": (dict, list, str, type(None)),
              "machine": OPT_DICT}
MACHINE = {"cores": OPT_INT, "kernel": OPT_STR}


def check_provenance(obj, where):
    """v1 files of our formats carry `provenance`; C++ outputs inherit the run's (run.json)."""
    if "provenance" not in obj:
        return [f"{where}: missing field 'provenance' (commit, flavour, options, machine)"]
    prov = obj["provenance"]
    problems = check_fields(prov, PROVENANCE, f"{where} provenance")
    if isinstance(prov, dict) and isinstance(prov.get("machine"), dict):
        problems += check_fields(prov["machine"], MACHINE, f"{where} provenance.machine")
    return problems


def check_map(runs, where):
    problems = []
    if not isinstance(runs, list):
        return [f"{where}: 'map' should be an array of [offset, bytes, state] runs"]
    expect = 0
    for i, run in enumerate(runs):
        if (not isinstance(run, list) or len(run) != 3 or not isinstance(run[0], int)
                or not isinstance(run[1], int) or run[2] not in MAP_STATES):
            problems.append(f"{where}: map run {i} is not [offset, bytes, free|busy|lazy]: {run!r:.80}")
            break
        if run[0] != expect:
            problems.append(f"{where}: map run {i} starts at {run[0]}, the previous one ends at {expect}")
            break
        expect = run[0] + run[1]
    return problems


def validate_run(obj, where):
    p = check_fields(obj, {"job": STR, "started": STR, "finished": OPT_STR, "steps": LIST}, where)
    p += check_choice(obj, "job", JOB_KINDS, where)
    p += check_provenance(obj, where)
    for i, step in enumerate(obj.get("steps") or []):
        p += check_fields(step, {"name": STR, "status": STR}, f"{where} step {i}")
        p += check_choice(step, "status", STEP_STATES, f"{where} step {i}")
    return p


def validate_ci(obj, where, version):
    if version == LEGACY:
        p = check_fields(obj, {"workloads": LIST}, where)
        for i, rec in enumerate(obj.get("workloads") or []):
            p += check_fields(rec, {"workload": STR, "seed": INT, "status": STR}, f"{where} workload {i}")
        return p
    p = check_fields(obj, {"workloads": LIST}, where) + check_provenance(obj, where)
    # Version 2 (the budgeted ci of issue 14): a unit the budget left out is "not-run"; the
    # regressions, fuzz and bench steps have records of their own.
    statuses = ("ok", "divergence", "error") + (("not-run",) if version >= 2 else ())
    if version >= 2:
        p += check_fields(obj, {"budget": DICT, "regressions": LIST, "fuzz": LIST, "bench": OPT_DICT,
                                "bugs": LIST}, where)
        for i, rec in enumerate(obj.get("regressions") or []):
            p += check_fields(rec, {"target": STR, "inputs": INT, "status": STR, "bugs": LIST}, f"{where} regressions {i}")
        for i, rec in enumerate(obj.get("fuzz") or []):
            p += check_fields(rec, {"target": STR, "execs": INT, "crashes": LIST, "findings": LIST}, f"{where} fuzz {i}")
    for i, rec in enumerate(obj.get("workloads") or []):
        p += check_fields(rec, {"workload": STR, "seed": INT, "status": STR, "replay": OPT_STR,
                                "timeline": OPT_STR, "trace": OPT_STR}, f"{where} workload {i}")
        p += check_choice(rec, "status", statuses, f"{where} workload {i}")
    return p


REPLAY_FIELDS = {"trace": STR, "region_bytes": INT, "guard_pages": INT, "ops": INT, "peak_live_bytes": INT,
                 "failures_by_kind": DICT, "failures": LIST, "final": DICT, "divergence": OPT_DICT,
                 "invariant_violation": OPT_DICT}
REPLAY_FAILURE_FIELDS = {"op": INT, "size": INT, "kind": STR, "free_bytes": INT, "largest_free_bytes": INT}
REPLAY_FINAL_FIELDS = {"free_bytes": INT, "largest_free_bytes": INT, "free_extents": INT, "live_bytes": INT,
                       "external_fragmentation": NUM}


def validate_replay(obj, where, version):
    p = check_fields(obj, REPLAY_FIELDS, where)
    if isinstance(obj.get("final"), dict):
        p += check_fields(obj["final"], REPLAY_FINAL_FIELDS, f"{where} final")
    for i, f in enumerate(obj.get("failures") or []):
        p += check_fields(f, REPLAY_FAILURE_FIELDS, f"{where} failure {i}")
        if isinstance(f, dict) and "map" in f:
            p += check_map(f["map"], f"{where} failure {i}")
    return p


TIMELINE_RECORD_FIELDS = {"op": INT, "kind": STR, "result": STR, "live_bytes": INT, "free_bytes": INT,
                          "largest_free_bytes": INT, "free_extents": INT, "external_fragmentation": NUM}


def validate_timeline_record(obj, where):
    return check_fields(obj, TIMELINE_RECORD_FIELDS, where)


def validate_finding(obj, where):
    p = check_fields(obj, {"id": STR, "signature": STR, "kind": STR, "trace": STR, "request": DICT,
                           "severity": OPT_NUM, "floor": OPT_DICT, "ops_before_minimisation": OPT_INT,
                           "ops_after_minimisation": OPT_INT, "region_bytes": INT, "guard_pages": INT}, where)
    p += check_choice(obj, "kind", FINDING_KINDS, where)
    p += check_provenance(obj, where)
    if isinstance(obj.get("request"), dict):
        p += check_fields(obj["request"], {"size": INT}, f"{where} request")
    if isinstance(obj.get("floor"), dict):
        p += check_fields(obj["floor"], {"value": OPT_NUM, "applies": BOOL, "reason": STR}, f"{where} floor")
    if obj.get("map") is not None:
        p += check_map(obj["map"], where)
    phys = obj.get("physical_map")
    if phys is not None:
        p += check_fields(phys, {"page_bytes": INT, "total_pages": INT, "free_blocks_by_order": LIST}, f"{where} physical_map")
    return p


CONFIRMATION = "vmfrag-confirmation"
CURRENT_VERSION[CONFIRMATION] = 1
CONFIRMATION_STATES = ("identical", "differs", "not-confirmable", "error")


def validate_confirmation(obj, where):
    """A finding replayed on a real kernel (kernel_job.confirm_findings, `vmfrag confirm --json`):
    the status must agree with what backs it, so that no record can say "identical" without a
    kernel release, or "differs" without the difference."""
    p = check_fields(obj, {"finding": OPT_STR, "trace": STR, "trace_sha256": STR, "kernel": DICT, "status": STR,
                           "reason": OPT_STR, "ops": OPT_INT, "ops_compared": INT, "first_difference": OPT_DICT,
                           "seconds": NUM, "notes": LIST}, where)
    p += check_choice(obj, "status", CONFIRMATION_STATES, where)
    p += check_provenance(obj, where)
    if isinstance(obj.get("kernel"), dict):
        p += check_fields(obj["kernel"], {"series": STR, "smp": INT, "release": OPT_STR}, f"{where} kernel")
    status, diff = obj.get("status"), obj.get("first_difference")
    if status in ("identical", "differs") and not (isinstance(obj.get("kernel"), dict)
                                                   and isinstance(obj["kernel"].get("release"), str)):
        p.append(f"{where}: status '{status}' without the kernel release it was compared on")
    if status == "identical" and diff is not None:
        p.append(f"{where}: status 'identical' with a first_difference")
    if status == "differs":
        if isinstance(diff, dict):
            p += check_fields(diff, {"op": INT, "kind": STR, "vmfrag": DICT, "kernel": DICT},
                              f"{where} first_difference")
        else:
            p.append(f"{where}: status 'differs' without its first_difference")
    if status in ("not-confirmable", "error") and not obj.get("reason"):
        p.append(f"{where}: status '{status}' without a reason")
    return p


def validate_bug(obj, where):
    p = check_fields(obj, {"id": STR, "kind": STR, "title": STR, "reproducer": OPT_STR, "command": OPT_STR,
                           "stack": LIST}, where)
    p += check_choice(obj, "kind", BUG_KINDS, where)
    p += check_provenance(obj, where)
    return p


def validate_fuzz_stats(obj, where):
    p = check_fields(obj, {"target": STR, "seconds": NUM, "execs": INT, "execs_per_second": NUM,
                           "corpus_size": INT, "features": OPT_INT, "findings": INT, "bugs": INT,
                           "history": LIST}, where)
    p += check_provenance(obj, where)
    for i, h in enumerate(obj.get("history") or []):
        p += check_fields(h, {"seconds": NUM, "execs": INT, "features": OPT_INT, "corpus_size": OPT_INT},
                          f"{where} history {i}")
    return p


def validate_hunt_eval(obj, where):
    p = check_fields(obj, {"config": DICT, "threshold": NUM, "seconds_per_trial": NUM, "arms": LIST}, where)
    p += check_provenance(obj, where)
    if isinstance(obj.get("config"), dict):
        p += check_fields(obj["config"], {"floor": OPT_NUM}, f"{where} config")
    for i, arm in enumerate(obj.get("arms") or []):
        p += check_fields(arm, {"name": STR, "trials": LIST}, f"{where} arm {i}")
        for j, t in enumerate(arm.get("trials") or [] if isinstance(arm, dict) else []):
            p += check_fields(t, {"seed": INT, "best_severity": OPT_NUM, "seconds_to_threshold": OPT_NUM,
                                  "ops_to_threshold": OPT_INT}, f"{where} arm {i} trial {j}")
    return p


def validate_bench_ratios(obj, where):
    p = check_fields(obj, {"ratios": LIST}, where) + check_provenance(obj, where)
    for i, r in enumerate(obj.get("ratios") or []):
        p += check_fields(r, {"name": STR, "numerator": STR, "denominator": STR, "goal": OPT_DICT}, f"{where} ratio {i}")
        if isinstance(r, dict) and isinstance(r.get("goal"), dict):
            p += check_fields(r["goal"], {"max": NUM}, f"{where} ratio {i} goal")
    return p


# The reliability figures of issue 15 (scripts/vmfrag_jobs/reliability.py).
RELIABILITY = "vmfrag-reliability"
CURRENT_VERSION[RELIABILITY] = 1
RELIABILITY_STATUSES = ("passed", "failed", "no-results")


def validate_reliability(obj, where):
    p = check_fields(obj, {"figures": LIST}, where) + check_provenance(obj, where)
    for i, f in enumerate(obj.get("figures") or []):
        w = f"{where} figure {i}"
        p += check_fields(f, {"name": STR, "description": STR, "flavour": STR, "tests": LIST, "status": STR,
                              "tried": INT, "passed": INT, "details": DICT}, w)
        p += check_choice(f, "status", RELIABILITY_STATUSES, w)
        if isinstance(f, dict) and isinstance(f.get("tried"), int) and isinstance(f.get("passed"), int) \
                and not 0 <= f["passed"] <= f["tried"]:
            p.append(f"{w}: 'passed' {f['passed']} is not within 0..tried ({f['tried']})")
    return p


def validate_google_benchmark(obj, where):
    p = check_fields(obj, {"context": DICT, "benchmarks": LIST}, where)
    for i, b in enumerate(obj.get("benchmarks") or []):
        p += check_fields(b, {"name": STR}, f"{where} benchmark {i}")
    return p


UNIT_KINDS = ("workload", "fuzz", "hunt", "stress")


def validate_nightly_plan(obj, where):
    p = check_fields(obj, {"budget_seconds": NUM, "shard_count": INT, "shard_index": INT, "rounds": INT,
                           "units": LIST}, where)
    for i, u in enumerate(obj.get("units") or []):
        p += check_fields(u, {"id": STR, "kind": STR, "seed": INT, "estimate": NUM}, f"{where} unit {i}")
        p += check_choice(u, "kind", UNIT_KINDS, f"{where} unit {i}")
    return p


def validate_nightly_unit(obj, where):
    p = check_fields(obj, {"unit": DICT, "started": STR, "finished": STR, "seconds": NUM, "bug": BOOL,
                           "result": DICT, "previous_attempt": OPT_STR}, where)
    if isinstance(obj.get("unit"), dict):
        p += check_fields(obj["unit"], {"id": STR, "kind": STR}, f"{where} unit")
        p += check_choice(obj["unit"], "kind", UNIT_KINDS, f"{where} unit")
        if obj["unit"].get("kind") == "workload" and isinstance(obj.get("result"), dict):
            p += check_fields(obj["result"], {"workload": STR, "seed": INT, "status": STR, "replay": OPT_STR,
                                              "timeline": OPT_STR, "trace": OPT_STR}, f"{where} result")
    return p


def validate_nightly_status(obj, where):
    return check_fields(obj, {"plan_units": INT, "shard_units": INT, "finished": INT, "not_run": LIST,
                              "bugs": LIST}, where)


def identify(obj):
    """(format, version) of a parsed JSON document, or (None, None) when it is none of ours."""
    if not isinstance(obj, dict):
        return None, None
    fmt = obj.get("format")
    if isinstance(fmt, str):
        version = obj.get("version")
        return fmt, version if isinstance(version, int) and not isinstance(version, bool) else None
    if "context" in obj and "benchmarks" in obj:
        ctx = obj.get("context") if isinstance(obj.get("context"), dict) else {}
        return GOOGLE_BENCHMARK, int(ctx["version"]) if str(ctx.get("version", "")).isdigit() else LEGACY
    if {"trace", "failures", "final"} <= obj.keys():
        return REPLAY, LEGACY
    if "workloads" in obj and "tests" in obj:
        return CI, LEGACY
    return None, None


def validate(fmt, version, obj, where):
    """Problems with a document of a known format; unknown versions are refused, not guessed."""
    if fmt not in CURRENT_VERSION:
        return [f"{where}: unknown format '{fmt}'"]
    if version is None:
        return [f"{where}: '{fmt}' without an integer 'version'"]
    if version > CURRENT_VERSION[fmt]:
        return [f"{where}: {fmt} version {version} is newer than this reader (reads up to {CURRENT_VERSION[fmt]})"]
    if version == LEGACY and fmt not in (CI, REPLAY, TIMELINE, GOOGLE_BENCHMARK):
        return [f"{where}: {fmt} has no legacy version 0"]
    return {
        RUN: lambda: validate_run(obj, where),
        CI: lambda: validate_ci(obj, where, version),
        REPLAY: lambda: validate_replay(obj, where, version),
        FINDING: lambda: validate_finding(obj, where),
        CONFIRMATION: lambda: validate_confirmation(obj, where),
        BUG: lambda: validate_bug(obj, where),
        FUZZ_STATS: lambda: validate_fuzz_stats(obj, where),
        HUNT_EVAL: lambda: validate_hunt_eval(obj, where),
        BENCH_RATIOS: lambda: validate_bench_ratios(obj, where),
        RELIABILITY: lambda: validate_reliability(obj, where),
        GOOGLE_BENCHMARK: lambda: validate_google_benchmark(obj, where),
        TIMELINE: lambda: [],
        NIGHTLY_PLAN: lambda: validate_nightly_plan(obj, where),
        NIGHTLY_UNIT: lambda: validate_nightly_unit(obj, where),
        NIGHTLY_STATUS: lambda: validate_nightly_status(obj, where),
    }[fmt]()
