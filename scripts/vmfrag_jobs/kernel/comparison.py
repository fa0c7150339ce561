"""vmfrag against the kernel, op by op: vmfrag's own replay of the trace (its timeline), the
kernel's outcome of each op, and the first difference with both outcomes and its kind."""
import json
import subprocess
import tempfile
from pathlib import Path

from .trace import PAGE


def vmfrag_replay(trace_path):
    """The C++ replay of the trace: (exit code, its JSON or None, its timeline, its stderr)."""
    from ..cli import cli_binary
    with tempfile.TemporaryDirectory(prefix="vmfrag-confirm.") as tmp:
        timeline = Path(tmp) / "timeline.jsonl"
        r = subprocess.run([str(cli_binary()), "replay", str(trace_path), "--json", "--timeline", str(timeline)],
                           capture_output=True, text=True)
        if r.returncode not in (0, 3):
            return r.returncode, None, None, r.stderr
        steps = [json.loads(ln) for ln in timeline.read_text().splitlines() if ln.strip()]
        return r.returncode, json.loads(r.stdout), steps, r.stderr


def kernel_steps(trace, run, result, window_lazy):
    """Per op, what `compare` needs: the outcome of an `a` (('ok', offset) or ('fail', kind),
    None for f and p), the window's lazily held bytes and the kernel's lazy counter after it."""
    failed = {f["op"]: f["kind"] for f in result["failures"]}
    steps = []
    for op, out, lazy in zip(trace.ops, run.outcomes, window_lazy):
        outcome = None
        if op.kind == "a":
            outcome = ("ok", out.value) if out.status == "ok" else ("fail", failed[op.index])
        steps.append({"outcome": outcome, "lazy_bytes": lazy, "lazy_nr": out.lazy_nr})
    return steps


def compare(trace, steps, kernel_steps):
    """Op by op: None when identical, else the first difference as a dict with both outcomes and
    its kind. Compared: each `a`'s placement or failure, and after every op the bytes lazily held
    in the window (a purge at another op than vmfrag's is a difference of its own kind, the root
    of any placement difference that follows)."""
    by_op = {s["op"]: s for s in steps}
    for op in trace.ops:
        if op.index not in by_op:  # vmfrag stops at a divergence from its model
            continue
        v, k = by_op[op.index], kernel_steps[op.index]
        if op.kind == "a":
            vm = ("ok", v["offset"]) if v["result"] == "ok" else ("fail", v["result"])
            if vm != k["outcome"]:
                return _difference(op, vm, k["outcome"])
        if v["lazy_bytes"] != k["lazy_bytes"]:
            earlier = k["lazy_bytes"] < v["lazy_bytes"]
            return {"op": op.index, "line": op.line, "text": op.text,
                    "kind": "purge-timing" if earlier else "purge-timing-late",
                    "vmfrag": {"result": "ok", "lazy_bytes": v["lazy_bytes"]},
                    "kernel": {"result": "ok", "lazy_bytes": k["lazy_bytes"], "lazy_counter_pages": k["lazy_nr"]}}
    return None


def _difference(op, vm, k):
    if vm[0] == "ok" and k[0] == "ok":
        kind = "alignment-search" if op.align > PAGE and k[1] > vm[1] else "placement"
    elif vm[0] == "ok":
        kind = "alignment-search" if k[1] == "alignment-search-miss" else "kernel-failed"
    elif k[0] == "ok":
        kind = "kernel-placed"
    else:
        kind = "failure-kind"
    return {"op": op.index, "line": op.line, "text": op.text, "kind": kind,
            "vmfrag": outcome_dict(vm), "kernel": outcome_dict(k)}


def outcome_dict(o):
    return {"result": "ok", "offset": o[1]} if o[0] == "ok" else {"result": o[1]}


def describe(o):
    if "lazy_bytes" in o:
        counter = f" (its lazy counter: {o['lazy_counter_pages']} pages)" if o.get("lazy_counter_pages") is not None else ""
        return f"{o['lazy_bytes']} bytes of the window lazily held{counter}"
    return f"placed at {o['offset']:#x}" if o["result"] == "ok" else f"failed: {o['result']}"


EXPLAIN = {
    "alignment-search": "the kernel searches for size + align - 1 bytes and missed the lowest aligned fit",
    "placement": "placed elsewhere",
    "kernel-failed": "only the kernel failed",
    "kernel-placed": "only vmfrag failed",
    "failure-kind": "both failed, for different reasons",
    "purge-timing": "the kernel purged earlier: its lazy counter counts every page vfree'd in the system "
                    "(a large area's page array lives outside the window), not only the window's",
    "purge-timing-late": "the kernel purged later than vmfrag (its lazy threshold is fls(CPUs) x 8192 pages)",
}

