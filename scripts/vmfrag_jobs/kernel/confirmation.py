"""Confirmation of findings on a real kernel: the kernel of a series made ready once (fetched, the
module built), each finding's trace replayed in vmfrag and in the kernel, and a
`vmfrag-confirmation` record written beside each finding (the format is in reports/README.md)."""
import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..results.schemas import CONFIRMATION, FINDING
from . import guest, module_build, packages
from .comparison import EXPLAIN, compare, kernel_steps, vmfrag_replay
from .errors import KernelError, TraceError
from .trace import read_trace
from .window import kernel_result


@dataclass
class ReadyKernel:
    """A series's kernel, downloaded and unpacked, with the module built for it: what every boot
    of a batch of confirmations shares."""
    kernel: packages.Kernel
    ko: Path
    seconds: dict  # fetch, module_build


def ready_kernel(series, log=print):
    t0 = time.monotonic()
    kernel = packages.fetch_kernel(series, log)
    t1 = time.monotonic()
    ko = module_build.build_module(kernel, log)
    return ReadyKernel(kernel, ko, {"fetch": round(t1 - t0, 3), "module_build": round(time.monotonic() - t1, 3)})


def replay_on(ready, trace, smp):
    """Boots the ready kernel with the trace: the replay JSON of the trace on it, and the kernel's
    outcome of each op (for `compare`)."""
    kernel = ready.kernel
    run, boot_s = guest.guest_run(kernel, ready.ko, trace, smp)
    meta = {"series": kernel.series, "package_version": kernel.version, "abi": kernel.abi, "smp": smp,
            "memory": guest.GUEST_MEMORY, "packages": {p: d.name for p, d in kernel.debs.items()},
            "seconds": dict(ready.seconds, boot=round(boot_s, 3))}
    window_lazy = []
    result = kernel_result(trace, run, meta, window_lazy=window_lazy)
    return result, kernel_steps(trace, run, result, window_lazy)


def run_kernel(trace, series, smp, log=print):
    """fetch + build + boot + parse: the replay JSON of the trace on Linux `series`, and the
    kernel's outcome of each op (for `compare`)."""
    return replay_on(ready_kernel(series, log), trace, smp)


# A record with one of these is a result and is kept; an `error` record is retried by the next run.
SETTLED = ("identical", "differs", "not-confirmable")


def verdict(trace, cxx, steps, ksteps, result):
    """vmfrag's replay against the kernel's, op by op: the fields of a confirmation record that
    come from the comparison. Ops after a divergence of vmfrag from its reference model are not
    replayed by vmfrag, so not compared (a note says where)."""
    diff = compare(trace, steps, ksteps)
    if diff is not None:
        diff["explanation"] = EXPLAIN[diff["kind"]]
    replayed = {s["op"] for s in steps}
    upto = len(trace.ops) if diff is None else diff["op"] + 1
    notes = list(result["kernel"]["notes"])
    if cxx["divergence"] is not None:
        notes.insert(0, {"op": cxx["divergence"]["op"], "line": cxx["divergence"]["line"],
                         "note": "vmfrag's replay stopped here, diverging from its reference model: "
                                 "later ops are not compared"})
    allocs = sum(1 for op in trace.ops if op.kind == "a" and op.index in replayed)
    return {"status": "identical" if diff is None else "differs",
            "ops": len(trace.ops), "ops_compared": sum(1 for i in replayed if i < upto),
            "allocations_compared": allocs,
            "identical_before_difference": allocs if diff is None else
            sum(1 for op in trace.ops if op.kind == "a" and op.index < diff["op"]),
            "first_difference": diff, "vmfrag_divergence": cxx["divergence"], "notes": notes}


def confirmation_record(finding, trace_name, trace_bytes, series, smp, started, *, ready=None, result=None,
                        verdict=None, status=None, reason=None):
    """A `vmfrag-confirmation` v1 document (reports/README.md): the verdict of a kernel run, or
    `not-confirmable` / `error` with the reason. `started` is the time.monotonic() it began."""
    from ..results import provenance
    k = result["kernel"] if result else {}
    record = {"format": CONFIRMATION, "version": 1, "finding": finding, "trace": trace_name,
              "trace_sha256": module_build.hash_bytes(trace_bytes),
              "kernel": {"series": series, "smp": smp,
                         "release": k.get("release") or (ready.kernel.abi if ready else None),
                         "version": k.get("version"),
                         "package_version": ready.kernel.version if ready else None,
                         "lazy_max_pages": k.get("lazy_max_pages")},
              "status": status, "reason": reason, "ops": None, "ops_compared": 0, "allocations_compared": 0,
              "identical_before_difference": 0, "first_difference": None, "vmfrag_divergence": None, "notes": []}
    record.update(verdict or {})
    record.update({"seconds": round(time.monotonic() - started, 3),
                   "confirmed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "kernel_replay": result,
                   "provenance": provenance.provenance("release", {"kernel": series, "smp": smp})})
    return record


def confirmation_path(sidecar, series):
    return sidecar.with_name(f"{sidecar.stem}.linux-{series}.json")


def _finding_sidecars(findings_dir):
    """(path, document) of every vmfrag-finding sidecar in the directory, by name."""
    found = []
    for p in sorted(Path(findings_dir).glob("*.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # damaged: the results loader reports it
        if isinstance(doc, dict) and doc.get("format") == FINDING and isinstance(doc.get("trace"), str):
            found.append((p, doc))
    return found


def _settled(path, trace_bytes, smp):
    """The existing record at `path` when it is a result for this very trace and guest, else None."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (isinstance(doc, dict) and doc.get("format") == CONFIRMATION and doc.get("status") in SETTLED
            and doc.get("trace_sha256") == module_build.hash_bytes(trace_bytes)
            and (doc.get("kernel") or {}).get("smp") == smp):
        return doc
    return None


def confirm_finding(sidecar, doc, series, smp, ready_for):
    """Replays one finding's trace in vmfrag and on the kernel `ready_for()` gives: its record.
    Ops the module cannot replay make it `not-confirmable`; anything that stops the kernel side
    (download, build, a module that did not load, a guest that printed nothing or too little)
    makes it `error`, with the reason, never `identical`."""
    t0 = time.monotonic()
    trace_path = sidecar.parent / doc["trace"]
    finding = doc.get("id") or sidecar.stem

    def record(**kw):
        return confirmation_record(finding, doc["trace"], data, series, smp, t0, **kw)

    try:
        data = trace_path.read_bytes()
    except OSError as e:
        data = b""
        return record(status="error", reason=f"cannot read the finding's trace {doc['trace']}: {e.strerror}")
    rc, cxx, steps, err = vmfrag_replay(trace_path)
    if cxx is None:
        return record(status="error", reason=f"vmfrag replay exited with {rc}: {err.strip()}")
    try:
        trace = read_trace(trace_path, display=doc["trace"])
    except TraceError as e:
        return record(status="not-confirmable", reason=str(e))
    ready = None
    try:
        waited = time.monotonic()
        ready = ready_for()
        t0 += time.monotonic() - waited  # the shared download and build are not this finding's time
        result, ksteps = replay_on(ready, trace, smp)
    except KernelError as e:
        return record(status="error", reason=str(e), ready=ready)
    return record(ready=ready, result=result, verdict=verdict(trace, cxx, steps, ksteps, result))


def confirm_findings(findings_dir, series, log=print, smp=1):
    """Confirms every finding in `findings_dir` (a `vmfrag-finding` sidecar + its trace) on each
    kernel series ("6.1", "6.12"): replays its trace in vmfrag and in the kernel and writes
    `<id>.linux-<series>.json` (vmfrag-confirmation v1) atomically beside the sidecar. Resumable:
    a finding that already has an identical / differs / not-confirmable record for the same trace
    bytes and guest CPUs is skipped; an `error` record is retried. The kernel is fetched and its module built
    once per series, and only when some finding needs it. Returns every finding's record (those
    found and those written), by series then finding. Needs the release build (`vmfrag replay`)."""
    from ..cli import cli_binary
    from ..results.writing import write_result
    unknown = [s for s in series if s not in packages.SERIES]
    if unknown:
        raise ValueError(f"unknown kernel series {', '.join(unknown)} (one of {', '.join(sorted(packages.SERIES))})")
    if not cli_binary().exists():
        raise KernelError(f"{cli_binary()} is missing: build release first (scripts/vmfrag setup)")
    sidecars = _finding_sidecars(findings_dir)
    records = []
    for s in series:
        prepared = {}

        def ready_for(s=s, prepared=prepared):
            # One fetch and build per series; a failure is every finding's error, not retried here.
            if "error" in prepared:
                raise prepared["error"]
            if "ready" not in prepared:
                try:
                    prepared["ready"] = ready_kernel(s, log)
                except KernelError as e:
                    prepared["error"] = e
                    raise
            return prepared["ready"]

        for sidecar, doc in sidecars:
            out = confirmation_path(sidecar, s)
            try:
                old = _settled(out, (sidecar.parent / doc["trace"]).read_bytes(), smp) if out.exists() else None
            except OSError:
                old = None
            if old is not None:
                log(f"vmfrag: {sidecar.stem} on Linux {s}: {old['status']} (recorded in {out.name}, kept)")
                records.append(old)
                continue
            rec = confirm_finding(sidecar, doc, s, smp, ready_for)
            write_result(out, rec)
            records.append(rec)
            if rec["status"] == "error":
                log(f"vmfrag: error: {sidecar.stem} could not be confirmed on Linux {s}: {rec['reason']}")
            else:
                what = rec["first_difference"]["kind"] if rec["status"] == "differs" else rec["reason"] or ""
                log(f"vmfrag: {sidecar.stem} on Linux {rec['kernel']['release'] or s}: {rec['status']}"
                    + (f" ({what})" if what else "") + f", {rec['ops_compared']} ops compared, "
                    f"{rec['seconds']:.1f} s -> {out.name}")
    return records

