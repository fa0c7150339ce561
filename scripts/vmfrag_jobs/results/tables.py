"""The tables that the HTML report and the terminal summary both show, computed from loaded results.

Nothing here renders and nothing re-implements the allocator: every number is read from a result
file the C++ tools or the jobs wrote, then selected, deduplicated, summed or compared. The one
derived picture is the address-space map's guard split: a busy run of the replay map is an area
*with* its guard (TRACE_FORMAT.md: an area occupies `[s, s + need)`, the guard its last
`guard_pages` pages), so it is shown as used bytes followed by guard bytes.

`compute(results)` returns one plain dict (JSON-serialisable, so a test can compare it with a
fixture and the terminal summary can print it) with the sections header, problems, bugs, findings,
workloads, fuzz, hunt, bench and key_figures.
"""
import os
import re
from datetime import datetime
from pathlib import Path, PurePosixPath

from . import schemas, statistics

PAGE = 4096
TRACE_LINES_SHOWN = 400        # a minimised trace longer than this is cut in the report
STACK_FRAMES_SHOWN = 6
STANDARD_BENCHMARK_KEYS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit", "aggregate_name",
    "aggregate_unit", "label", "error_occurred", "error_message", "bytes_per_second", "items_per_second"}
UNSUPPORTED_PREFIX = "unsupported:"


def _parse_time(text):
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _display_path(results, rf, rel_to_file):
    """A path written in a result file (relative to that file's directory), as seen from the first
    results directory (where index.html goes)."""
    target = rf.root / PurePosixPath(rf.rel).parent / rel_to_file
    try:
        return Path(target).resolve().relative_to(results.roots[0]).as_posix()
    except ValueError:
        return Path(os.path.relpath(Path(target).resolve(), results.roots[0])).as_posix()


# --------------------------------------------------------------------------------------------- header

def _perf_counters(results):
    """name -> status ("available", "user only", "unsupported: EACCES", ...) from the run's machine
    record and the benchmark context (which is what measured them)."""
    counters = {}
    for run in results.of(schemas.RUN):
        machine = (run.data.get("provenance") or {}).get("machine") or {}
        for name, status in (machine.get("perf_counters") or {}).items():
            counters[name] = str(status)
    for bench in results.of(schemas.GOOGLE_BENCHMARK):
        for key, value in (bench.data.get("context") or {}).items():
            if isinstance(value, str) and value.startswith(UNSUPPORTED_PREFIX):
                counters[key] = value
    return [{"name": n, "status": s, "available": not s.startswith(UNSUPPORTED_PREFIX)}
            for n, s in sorted(counters.items())]


def header(results, verdict):
    runs = results.of(schemas.RUN)
    head = {"job": None, "started": None, "finished": None, "duration_seconds": None, "commit": None,
            "flavour": None, "options": None, "machine": {}, "shards": [], "verdict": verdict,
            "perf_counters": _perf_counters(results), "paranoid": None, "results_dirs": [str(r) for r in results.roots],
            "has_manifest": bool(runs)}
    if not runs:
        # Without a manifest, take what provenance the result files carry.
        for f in results.files:
            prov = (f.data or {}).get("provenance") if isinstance(f.data, dict) else None
            if prov:
                head.update(commit=prov.get("commit"), flavour=prov.get("flavour"), options=prov.get("options"),
                            machine=prov.get("machine") or {})
                break
        # A ci.json without a manifest is the ci job's (legacy) summary.
        head["job"] = "ci" if results.of(schemas.CI) else "adhoc"
    else:
        first = runs[0].data
        prov = first.get("provenance") or {}
        head.update(job=first.get("job"), commit=prov.get("commit"), flavour=prov.get("flavour"),
                    options=prov.get("options"), machine=prov.get("machine") or {})
        starts = [_parse_time(r.data.get("started")) for r in runs]
        ends = [_parse_time(r.data.get("finished")) for r in runs]
        starts = [s for s in starts if s]
        head["started"] = min(starts).isoformat() if starts else None
        if all(ends) and ends:
            head["finished"] = max(ends).isoformat()
            if starts:
                head["duration_seconds"] = (max(ends) - min(starts)).total_seconds()
        head["shards"] = [{"dir": r.root.name, "shard": r.data.get("shard"), "finished": r.data.get("finished")}
                          for r in runs] if len(runs) > 1 else []
        head["commits"] = sorted({(r.data.get("provenance") or {}).get("commit") or "unknown" for r in runs})
    head["paranoid"] = head["machine"].get("perf_event_paranoid") if head["machine"] else None
    return head


# ----------------------------------------------------------------------------------------------- bugs

FRAME_ADDRESS = re.compile(r"^\s*#\d+\s+0x[0-9a-f]+\s+in\s+")
NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")


def _frame_function(frame):
    """'#3 0x55d in vmfrag::Vmalloc::vfree(void*) allocator/x.cpp:12' -> 'vmfrag::Vmalloc::vfree(void*)'."""
    text = FRAME_ADDRESS.sub("", frame).strip()
    head, _, last = text.rpartition(" ")
    if head and ("/" in last or ":" in last or last.startswith("(")):
        text = head  # drop the source location or the "(module+0x...)" tail
    return text or frame.strip()


def bug_signature(kind, stack, detail):
    """The stated dedup signature: the kind with the top three stack frames' functions; without a
    stack, the kind with the message's words (numbers and addresses masked, so the same divergence
    at other offsets or seeds is one bug)."""
    if stack:
        return kind + " | " + " < ".join(_frame_function(f) for f in stack[:3])
    masked = NUMBERS.sub(lambda m: "0xN" if m.group().startswith("0x") else "N", detail or "")
    return kind + " | " + masked[:160]


def _replay_command(trace):
    return f"scripts/vmfrag replay {trace} --json --differential"


def bugs(results):
    found = []
    for rf in results.of(schemas.BUG):
        d = rf.data
        stack = [str(s) for s in d.get("stack") or []]
        repro = d.get("reproducer")
        found.append({
            "kind": d.get("kind"), "title": d.get("title"),
            "signature": d.get("signature") or bug_signature(d.get("kind"), stack, d.get("title")),
            "reproducer": _display_path(results, rf, repro) if repro else None,
            "command": d.get("command"), "stack_top": stack[:STACK_FRAMES_SHOWN], "detail": d.get("log_excerpt") or "",
            "target": d.get("target"), "sources": [rf.rel]})
    replayed = set()
    for rf in results.of(schemas.REPLAY):
        d = rf.data
        replayed.add(PurePosixPath(d.get("trace") or "").name)
        for key, kind in (("divergence", "divergence"), ("invariant_violation", "invariant-violation")):
            event = d.get(key)
            if not isinstance(event, dict):
                continue
            if kind == "divergence":
                detail = f"allocator: {event.get('allocator')}; reference: {event.get('reference')}"
            else:
                detail = str(event.get("what"))
            found.append({
                "kind": kind, "title": f"{kind} at op {event.get('op')} of {PurePosixPath(d.get('trace')).name}",
                "signature": bug_signature(kind, [], detail), "reproducer": d.get("trace"),
                "command": _replay_command(d.get("trace")), "stack_top": [], "detail": detail,
                "target": None, "sources": [rf.rel]})
    workload_records = [(rf, rec) for rf in results.of(schemas.CI) for rec in rf.data.get("workloads") or []]
    workload_records += [(rf, rf.data["result"]) for rf in results.of(schemas.NIGHTLY_UNIT)
                         if rf.data["unit"].get("kind") == "workload"]
    for rf in results.of(schemas.NIGHTLY_UNIT):
        r = rf.data["result"]
        if rf.data["unit"].get("kind") == "stress" and rf.data.get("bug"):
            kind = "sanitizer" if r.get("data_race") else "crash"
            detail = (f"{'TSan data race' if r.get('data_race') else 'exit ' + str(r.get('exit_code'))}; "
                      f"corrupted areas: {sum(x['corrupted'] for x in r.get('runs') or [])}")
            env = " ".join(f"{k}={v}" for k, v in sorted((r.get("environment") or {}).items()))
            found.append({"kind": kind, "title": f"concurrency stress seed {r.get('seed')}: {detail}",
                          "signature": bug_signature(kind, [], "concurrency stress: " + detail),
                          "reproducer": None, "command": f"{env} {r.get('command')}".strip(), "stack_top": [],
                          "detail": detail, "target": "concurrency stress", "sources": [rf.rel]})
    for rf, rec in workload_records:
        if True:
            if not isinstance(rec, dict) or rec.get("status") not in ("divergence", "error"):
                continue
            if rec.get("replay") and results.find(rf.root, rec["replay"]) is not None:
                continue  # counted from its replay file above
            trace = rec.get("trace")
            if trace and PurePosixPath(trace).name in replayed:
                continue
            kind = "divergence" if rec["status"] == "divergence" else "crash"
            detail = rec.get("error") or rec["status"]
            repro = _display_path(results, rf, trace) if trace else None
            found.append({
                "kind": kind, "title": f"{rec.get('workload')} seed {rec.get('seed')}: {rec['status']}",
                "signature": bug_signature(kind, [], f"{rec.get('workload')}: {detail}"), "reproducer": repro,
                "command": _replay_command(repro) if repro else None, "stack_top": [], "detail": detail,
                "target": rec.get("workload"), "sources": [rf.rel]})
    return _dedup(found, better=lambda a, b: False)


def _dedup(items, better):
    """One entry per signature, in first-seen order, with the number of occurrences; `better(a, b)`
    says whether a replaces the kept b as the representative."""
    by_sig = {}
    for item in items:
        kept = by_sig.get(item["signature"])
        if kept is None:
            by_sig[item["signature"]] = dict(item, count=1)
            continue
        count, sources = kept["count"] + 1, kept["sources"] + item["sources"]
        if better(item, kept):
            kept = by_sig[item["signature"]] = dict(item)
        kept["count"], kept["sources"] = count, sources
    return list(by_sig.values())


# ------------------------------------------------------------------------------------------- findings

def address_segments(runs, guard_pages):
    """The replay map's runs as drawable segments: free, lazy, and each busy run split into the
    area's used bytes and its guard (its last guard_pages pages)."""
    guard = guard_pages * PAGE
    segments = []
    for offset, size, state in runs:
        if state == "busy" and guard and size > guard:
            segments.append({"offset": offset, "bytes": size - guard, "state": "used"})
            segments.append({"offset": offset + size - guard, "bytes": guard, "state": "guard"})
        else:
            segments.append({"offset": offset, "bytes": size, "state": "used" if state == "busy" else state})
    return segments


def _map_totals(segments):
    totals = {"used": 0, "guard": 0, "free": 0, "lazy": 0}
    largest_free = 0
    for s in segments:
        totals[s["state"]] += s["bytes"]
        if s["state"] == "free":
            largest_free = max(largest_free, s["bytes"])
    return totals, largest_free


def _read_trace(path):
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None, 0
    return "\n".join(lines[:TRACE_LINES_SHOWN]), len(lines)


def confirmation_row(rf):
    """One kernel's verdict on a finding (a vmfrag-confirmation record), as the report shows it."""
    d = rf.data
    k = d.get("kernel") or {}
    return {"series": k.get("series"), "release": k.get("release"), "status": d.get("status"),
            "reason": d.get("reason"), "difference": d.get("first_difference"), "ops_compared": d.get("ops_compared"),
            "seconds": d.get("seconds"), "source": rf.rel}


def findings(results):
    found = []
    for rf in results.of(schemas.FINDING):
        d = rf.data
        request = d.get("request") or {}
        floor = d.get("floor") or {}
        severity = d.get("severity")
        floor_value = floor.get("value") if floor.get("applies") else None
        trace_rel = _display_path(results, rf, d["trace"])
        trace_text, trace_lines = _read_trace(rf.root / PurePosixPath(rf.rel).parent / d["trace"])
        segments = address_segments(d.get("map") or [], d.get("guard_pages") or 0) if d.get("map") else []
        totals, largest_free = _map_totals(segments)
        phys = d.get("physical_map")
        found.append({
            "id": d.get("id"), "signature": d.get("signature"), "kind": d.get("kind"), "target": d.get("target"),
            "request_size": request.get("size"), "request_need": request.get("need_bytes"),
            "request_align": request.get("align"), "severity": severity,
            "floor": floor.get("value"), "floor_applies": bool(floor.get("applies")), "floor_reason": floor.get("reason"),
            "distance_to_floor": (severity - floor_value) if severity is not None and floor_value is not None else None,
            "below_floor": severity is not None and floor_value is not None and severity < floor_value,
            "ops_before": d.get("ops_before_minimisation"), "ops_after": d.get("ops_after_minimisation"),
            "trace": trace_rel, "trace_text": trace_text, "trace_lines": trace_lines,
            "replay_command": d.get("replay_command") or f"scripts/vmfrag replay {trace_rel} --json",
            "region_bytes": d.get("region_bytes"), "guard_pages": d.get("guard_pages"),
            "segments": segments, "map_totals": totals, "largest_free_bytes": largest_free,
            "physical_map": phys, "found_at": d.get("found_at"), "sources": [rf.rel],
            "confirmations": [confirmation_row(c) for c in results.confirmations_of(rf)]})
    # Keep the most severe (lowest severity) representative of each signature.
    kept = _dedup(found, better=lambda a, b: (a["severity"] is not None
                                              and (b["severity"] is None or a["severity"] < b["severity"])))
    return sorted(kept, key=lambda f: (f["severity"] is None, f["severity"] if f["severity"] is not None else 0))


def findings_as_bugs(finding_rows):
    """A finding below the theoretical floor breaks a proven bound: it is an allocator bug."""
    return [{"kind": "invariant-violation", "title": f"finding {f['id']} has severity {f['severity']:.4f}, below "
             f"the floor {f['floor']:.4f} that address-ordered first fit guarantees",
             "signature": f"below-floor | {f['signature']}", "reproducer": f["trace"], "command": f["replay_command"],
             "stack_top": [], "detail": f["floor_reason"] or "", "target": f["target"], "sources": f["sources"], "count": 1}
            for f in finding_rows if f["below_floor"]]


# ------------------------------------------------------------------------------------------ workloads

SEED_STEM = re.compile(r"^(?P<name>.+)-seed(?P<seed>\d+)$")


def _stem(rel):
    name = PurePosixPath(rel).name
    for suffix in (".replay.json", ".timeline.jsonl", ".json", ".jsonl"):
        if name.endswith(suffix):
            return str(PurePosixPath(rel).parent / name[: -len(suffix)])
    return rel


def timeline_series(envelope):
    """The charts' data from a streamed timeline (results/timeline.py): per metric, (op, value)
    pairs keeping every bucket's minimum and maximum; failures as one mark per bucket."""
    return {"ops": envelope.ops, "first_op": envelope.first_op, "last_op": envelope.last_op,
            "series": envelope.series(), "failures": envelope.failure_marks(), "failed_ops": envelope.failed_ops}


def first_failure(failure, region_bytes, guard_pages):
    """A workload's first failed request with the address-space map replay recorded there."""
    runs = failure.get("map") or []
    segments = address_segments(runs, guard_pages or 0) if runs else []
    totals, largest = _map_totals(segments)
    return {"op": failure.get("op"), "kind": failure.get("kind"), "size": failure.get("size"),
            "free_bytes": failure.get("free_bytes"), "largest_free_bytes": failure.get("largest_free_bytes"),
            "region_bytes": region_bytes, "segments": segments, "guard_split": guard_pages is not None,
            "map_totals": totals}


def workloads(results):
    timelines = {(t.root, _stem(t.rel)): t for t in results.of(schemas.TIMELINE)}
    replays = {(r.root, _stem(r.rel)): r for r in results.of(schemas.REPLAY)}
    named = {}
    records = [(ci.root, rec) for ci in results.of(schemas.CI) for rec in ci.data.get("workloads") or []]
    # nightly: one record per finished workload unit, the same record as a ci.json entry.
    records += [(u.root, u.data["result"]) for u in results.of(schemas.NIGHTLY_UNIT)
                if u.data["unit"].get("kind") == "workload"]
    for root, rec in records:
        if isinstance(rec, dict):
            key = (root, _stem(rec["replay"])) if rec.get("replay") else (root, f"legacy:{rec.get('workload')}-{rec.get('seed')}")
            named[key] = rec
    rows = []
    for key in sorted(set(replays) | set(named) | set(timelines), key=lambda k: (str(k[0]), k[1])):
        rec, replay, timeline = named.get(key), replays.get(key), timelines.get(key)
        m = SEED_STEM.match(PurePosixPath(key[1]).name)
        name = (rec or {}).get("workload") or (m.group("name") if m else PurePosixPath(key[1]).name)
        seed = (rec or {}).get("seed") if rec else (int(m.group("seed")) if m else None)
        row = {"workload": name, "seed": seed, "status": (rec or {}).get("status"), "ops": None,
               "failures_by_kind": {}, "peak_live_bytes": None, "region_bytes": None,
               "external_fragmentation": None, "largest_free_bytes": None, "free_extents": None,
               "timeline": None, "timeline_note": None, "first_failure": None, "sources": []}
        if replay:
            d = replay.data
            row.update(ops=d["ops"], failures_by_kind=dict(d["failures_by_kind"]), peak_live_bytes=d["peak_live_bytes"],
                       region_bytes=d["region_bytes"], external_fragmentation=d["final"]["external_fragmentation"],
                       largest_free_bytes=d["final"]["largest_free_bytes"], free_extents=d["final"]["free_extents"])
            if row["status"] is None:
                row["status"] = "ok" if d["divergence"] is None and d["invariant_violation"] is None else "divergence"
            row["sources"].append(replay.rel)
            if d["failures"]:
                row["first_failure"] = first_failure(d["failures"][0], d["region_bytes"], d["guard_pages"])
        elif rec:
            row.update(ops=rec.get("ops"), failures_by_kind=dict(rec.get("failures_by_kind") or {}),
                       peak_live_bytes=rec.get("peak_live_bytes"), region_bytes=rec.get("region_bytes"),
                       external_fragmentation=rec.get("external_fragmentation"))
            if isinstance(rec.get("first_failure"), dict) and rec.get("region_bytes"):
                # The legacy record has no guard_pages: its busy runs are drawn whole, guard unsplit.
                row["first_failure"] = first_failure(rec["first_failure"], rec["region_bytes"], None)
        if timeline:
            row["timeline"] = timeline_series(timeline.data["envelope"])
            row["sources"].append(timeline.rel)
            if timeline.damaged:
                row["timeline_note"] = f"timeline cut short: {timeline.data['ops']} ops recorded"
        else:
            row["timeline_note"] = "no timeline recorded" + (" (legacy ci.json keeps none)" if rec and not replay else "")
        if row["status"] is None:
            row["status"] = "partial"
        rows.append(row)
    return rows


def charted_workloads(rows):
    """One chart set per workload: the seed with the most failures (the lowest seed on a tie)."""
    best = {}
    for r in rows:
        if r["timeline"] is None:
            continue
        score = (sum(r["failures_by_kind"].values()) or r["timeline"]["failed_ops"], -(r["seed"] or 0))
        if r["workload"] not in best or score > best[r["workload"]][0]:
            best[r["workload"]] = (score, r)
    return [best[k][1] for k in sorted(best)]


# ----------------------------------------------------------------------------------------------- fuzz

def fuzz(results):
    rows = []
    for rf in results.of(schemas.FUZZ_STATS):
        d = rf.data
        rows.append({"target": d["target"], "seconds": d["seconds"], "execs": d["execs"],
                     "execs_per_second": d["execs_per_second"], "corpus_size": d["corpus_size"],
                     "features": d.get("features"), "findings": d["findings"], "bugs": d["bugs"],
                     "jobs": d.get("jobs"), "history": d.get("history") or [], "sources": [rf.rel]})
    return sorted(rows, key=lambda r: r["target"])


# ----------------------------------------------------------------------------------------------- hunt

def hunt(results):
    evals = results.of(schemas.HUNT_EVAL)
    if not evals:
        return None
    # Shards of one evaluation (nightly --shard, joined by report --merge) each carry their own
    # trials: arms of the same name are pooled when the config, threshold and CPU time agree.
    rf = evals[0]
    d = rf.data
    threshold = d["threshold"]
    same = [e for e in evals if (e.data["threshold"], e.data["seconds_per_trial"], e.data["config"])
            == (threshold, d["seconds_per_trial"], d["config"])]
    pooled = {}
    for e in same:
        for arm in e.data["arms"]:
            pooled.setdefault(arm["name"], {"name": arm["name"], "description": arm.get("description"), "trials": []})
            pooled[arm["name"]]["trials"] += arm["trials"]
    arms = []
    for arm in pooled.values():
        trials = arm["trials"]
        best = [t["best_severity"] for t in trials if t["best_severity"] is not None]
        reached = sorted(t["seconds_to_threshold"] for t in trials if t["seconds_to_threshold"] is not None)
        low, high = statistics.wilson_interval(len(reached), len(trials))
        kept = [t for t in trials if t.get("kept_by_state_features") is not None and t.get("corpus_size")]
        arms.append({
            "name": arm["name"], "description": arm.get("description"), "trials": len(trials),
            "best_severities": best, "best": min(best) if best else None, "median": statistics.median(best),
            "successes": len(reached), "censored": len(trials) - len(reached),
            "success_rate": len(reached) / len(trials) if trials else None, "ci_low": low, "ci_high": high,
            "success_curve": [{"seconds": s, "share": (i + 1) / len(trials)} for i, s in enumerate(reached)],
            "median_seconds_to_threshold": statistics.median(reached),
            "median_ops_to_threshold": statistics.median([t["ops_to_threshold"] for t in trials
                                                          if t["ops_to_threshold"] is not None]),
            "state_feature_share": (sum(t["kept_by_state_features"] for t in kept) / sum(t["corpus_size"] for t in kept))
            if kept else None,
            "seeds": [t["seed"] for t in trials]})
    comparisons = []
    for other in arms[1:]:
        u, p = statistics.mann_whitney_u(arms[0]["best_severities"], other["best_severities"])
        comparisons.append({"a": arms[0]["name"], "b": other["name"], "u": u, "p": p,
                            "a12": statistics.vargha_delaney_a12(arms[0]["best_severities"], other["best_severities"])})
    return {"threshold": threshold, "seconds_per_trial": d["seconds_per_trial"], "config": d["config"],
            "floor": d["config"].get("floor"), "arms": arms, "comparisons": comparisons,
            "sources": [e.rel for e in same]}


# ---------------------------------------------------------------------------------------------- bench

def _benchmark_rows(doc):
    benches = [b for b in doc.get("benchmarks") or [] if isinstance(b, dict)]
    medians = [b for b in benches if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"]
    return (medians, "median of repetitions") if medians else (
        [b for b in benches if b.get("run_type") != "aggregate"], "single run")


def bench(results):
    docs = results.of(schemas.GOOGLE_BENCHMARK)
    if not docs:
        return None
    rows, unsupported, counter_names, statistic = [], {}, [], None
    for rf in docs:
        ctx = rf.data.get("context") or {}
        for key, value in ctx.items():
            if isinstance(value, str) and value.startswith(UNSUPPORTED_PREFIX):
                unsupported[key] = value
        picked, statistic = _benchmark_rows(rf.data)
        for b in picked:
            counters = {k: v for k, v in b.items() if k not in STANDARD_BENCHMARK_KEYS and isinstance(v, (int, float))
                        and not isinstance(v, bool)}
            for k in counters:
                if k not in counter_names:
                    counter_names.append(k)
            rows.append({"name": b.get("run_name") or b["name"], "full_name": b["name"],
                         "real_time": b.get("real_time"), "cpu_time": b.get("cpu_time"),
                         "time_unit": b.get("time_unit", "ns"), "iterations": b.get("iterations"),
                         "error": b.get("error_message") if b.get("error_occurred") else None,
                         "counters": counters, "source": rf.rel})
    for name in unsupported:
        if name not in counter_names:
            counter_names.append(name)
    for row in rows:
        row["cells"] = [{"name": c, "value": row["counters"].get(c),
                         "text": None if c in row["counters"] else unsupported.get(c, "not reported")}
                        for c in counter_names]
    by_name = {r["name"]: r for r in rows}
    ratios = []
    for rf in results.of(schemas.BENCH_RATIOS):
        for r in rf.data["ratios"]:
            num, den = by_name.get(r["numerator"]), by_name.get(r["denominator"])
            value = None
            missing = [n for n, row in ((r["numerator"], num), (r["denominator"], den)) if row is None]
            if not missing and num["real_time"] and den["real_time"]:
                value = num["real_time"] / den["real_time"]
            goal = (r.get("goal") or {}).get("max")
            ratios.append({"name": r["name"], "numerator": r["numerator"], "denominator": r["denominator"],
                           "description": r.get("description"), "ratio": value, "goal_max": goal,
                           "met": None if value is None or goal is None else value <= goal,
                           "missing": missing})
    return {"rows": rows, "counters": counter_names, "unsupported": unsupported, "statistic": statistic,
            "ratios": ratios, "sources": [rf.rel for rf in docs]}


# ------------------------------------------------------------------------------------------- figures

def key_figures(tables):
    """The figures the history keeps per run and compares with earlier runs of the same job kind:
    name -> (value, unit, which direction is better, relative tolerance before a change is a
    regression). "neutral" figures are shown in the trend and never flagged: more findings may be
    a better hunt or a worse allocator."""
    fig = {"bugs": (len(tables["bugs"]), "count", "lower", 0.0),
           "findings": (len(tables["findings"]), "count", "neutral", 0.0)}
    sev = [f["severity"] for f in tables["findings"] if f["severity"] is not None]
    if sev:
        fig["best_finding_severity"] = (min(sev), "ratio", "neutral", 0.0)
    runs = tables["workloads"]
    if runs:
        fig["workload_runs"] = (len(runs), "count", "neutral", 0.0)
        fig["workload_failures"] = (sum(sum(r["failures_by_kind"].values()) for r in runs), "count", "lower", 0.0)
        ext = [r["external_fragmentation"] for r in runs if r["external_fragmentation"] is not None]
        if ext:
            fig["max_final_external_fragmentation"] = (max(ext), "ratio", "lower", 0.05)
    for row in tables["fuzz"]:
        fig[f"fuzz.{row['target']}.execs_per_second"] = (row["execs_per_second"], "execs/s", "higher", 0.2)
    if tables["hunt"]:
        for arm in tables["hunt"]["arms"]:
            if arm["success_rate"] is not None:
                fig[f"hunt.{arm['name']}.success_rate"] = (arm["success_rate"], "share", "higher", 0.0)
    for f in (tables.get("reliability") or {}).get("figures", []):
        fig[f"reliability.{f['name']}.failed"] = (f["tried"] - f["passed"], "count", "lower", 0.0)
    if tables["bench"]:
        for row in tables["bench"]["rows"]:
            if row["real_time"] is not None:
                fig[f"bench.{row['name']}.real_time"] = (row["real_time"], row["time_unit"], "lower", 0.10)
    return [{"name": k, "value": v[0], "unit": v[1], "better": v[2], "tolerance": v[3]} for k, v in fig.items()]


# ---------------------------------------------------------------------------------------------- all

def _verdict(bug_rows, problems):
    incomplete = any("no end time" in p or "truncated" in p or "unreadable" in p or "still running" in p
                     for p in problems)
    if bug_rows:
        return {"status": "bugs", "text": f"{len(bug_rows)} bug{'s' if len(bug_rows) != 1 else ''} found",
                "incomplete": incomplete}
    return {"status": "incomplete" if incomplete else "clean",
            "text": "no bugs found" + (" in what was written (the run is incomplete)" if incomplete else ""),
            "incomplete": incomplete}


def reliability(results):
    """Issue 15's figures (reliability.json): what was tried, what passed, in which sanitizer build."""
    docs = results.of(schemas.RELIABILITY)
    if not docs:
        return None
    rf = docs[0]
    return {"figures": [{"name": f["name"], "description": f["description"], "flavour": f["flavour"],
                         "tried": f["tried"], "passed": f["passed"], "status": f["status"],
                         "details": ", ".join(f"{k} {v}" for k, v in sorted((f.get("details") or {}).items()))}
                        for f in rf.data["figures"]],
            "commit": (rf.data.get("provenance") or {}).get("commit"), "source": rf.rel}


def units(results):
    """What a nightly run did, by unit kind: planned for this directory, finished, with a bug, not run
    (budget); and the concurrency stress's figures (threads x ops run TSan-clean). None for a ci run."""
    plans = results.of(schemas.NIGHTLY_PLAN)
    done = results.of(schemas.NIGHTLY_UNIT)
    if not plans and not done:
        return None
    planned = {}
    for rf in plans:
        d = rf.data
        for i, u in enumerate(d["units"]):
            if i % d["shard_count"] == d["shard_index"] - 1:
                planned[(rf.root, u["id"])] = u["kind"]
    finished = {(rf.root, rf.data["unit"]["id"]): rf for rf in done}
    kinds = []
    for kind in schemas.UNIT_KINDS:
        mine = [k for k, v in planned.items() if v == kind] or [k for k, rf in finished.items()
                                                                   if rf.data["unit"]["kind"] == kind]
        fin = [finished[k] for k in mine if k in finished]
        if not mine:
            continue
        kinds.append({"kind": kind, "planned": len(mine), "finished": len(fin),
                      "bugs": sum(bool(rf.data.get("bug")) for rf in fin), "not_run": len(mine) - len(fin),
                      "seconds": sum(rf.data.get("seconds") or 0 for rf in fin)})
    stress = [rf.data["result"] for rf in done if rf.data["unit"]["kind"] == "stress"]
    clean = [r for r in stress if r.get("status") == "ok"]
    return {"kinds": kinds,
            "stress_units": len(stress),
            "stress_clean_ops": sum(x["threads"] * x["ops_per_thread"] * x["rounds"] for r in clean for x in r["runs"]),
            "stress_threads": sorted({x["threads"] for r in stress for x in r.get("runs") or []}),
            "killed_attempts": sum(1 for rf in done if rf.data.get("previous_attempt"))}


def compute(results):
    finding_rows = findings(results)
    bug_rows = bugs(results) + findings_as_bugs(finding_rows)
    problems = list(dict.fromkeys(results.problems))
    commits = {(r.data.get("provenance") or {}).get("commit") or "unknown" for r in results.of(schemas.RUN)}
    if len(commits) > 1:
        problems.append(f"the merged runs come from different commits ({', '.join(sorted(commits))}): "
                        "their figures are not one run's")
    tables = {
        "problems": problems,
        "bugs": bug_rows,
        "findings": finding_rows,
        "workloads": workloads(results),
        "fuzz": fuzz(results),
        "hunt": hunt(results),
        "bench": bench(results),
        "units": units(results),
        "reliability": reliability(results),
        "legacy_files": [f"{f.root.name}/{f.rel}: {n}" for f in results.files for n in f.notes],
    }
    tables["charted_workloads"] = charted_workloads(tables["workloads"])
    tables["header"] = header(results, _verdict(bug_rows, problems))
    tables["key_figures"] = key_figures(tables)
    return tables
