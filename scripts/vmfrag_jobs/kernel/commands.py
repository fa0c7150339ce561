"""The commands `kernel-replay` and `confirm` (scripts/vmfrag's subcommands)."""
import json
import sys
import time
from pathlib import Path

from .comparison import describe, vmfrag_replay
from .confirmation import confirmation_record, ready_kernel, replay_on, run_kernel, verdict
from .errors import TraceError
from .packages import DEFAULT_SERIES, SERIES
from .trace import read_trace


def add_kernel_parsers(subparsers, bounded_int):
    """Adds `kernel-replay` and `confirm` to scripts/vmfrag's subcommands."""
    for name, help_text, func in (
            ("kernel-replay", "replay a trace's a/f/p ops in a real Linux kernel (Debian's, under QEMU)",
             cmd_kernel_replay),
            ("confirm", "replay a trace in vmfrag and in a real Linux kernel and compare op by op",
             cmd_confirm)):
        s = subparsers.add_parser(name, help=help_text)
        s.add_argument("trace", metavar="TRACE", help="a vmtrace with a, f and p ops only")
        s.add_argument("--kernel", choices=sorted(SERIES), default=DEFAULT_SERIES,
                       help=f"Debian's kernel series (default {DEFAULT_SERIES})")
        s.add_argument("--smp", type=bounded_int(1, 8), default=1, metavar="N",
                       help="guest CPUs, 1 to 8 (default 1: the kernel's lazy threshold is then the "
                            "vmtrace default, 8192 pages)")
        s.add_argument("--json", action="store_true", help="print one JSON object")
        s.set_defaults(func=func)


def _prepare_and_check(args):
    """Packages and the release build, then the C++ replay of the trace (whose reader is the
    judge of the trace's text), then this command's own refusals."""
    from ..cli import prepare
    if args.trace == "-":
        raise TraceError(f"vmfrag: error: {args.command} needs a trace file, not standard input")
    prepare(("release",))
    rc, cxx, steps, err = vmfrag_replay(args.trace)
    if cxx is None:
        sys.stderr.write(err)
        return None, None, None, rc
    return read_trace(args.trace), cxx, steps, 0


def cmd_kernel_replay(args):
    trace, _, _, rc = _prepare_and_check(args)
    if trace is None:
        return rc
    result, _ = run_kernel(trace, args.kernel, args.smp, log=_log)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(summary_line(result))
        for f in result["failures"]:
            print(f"  op {f['op']} (line {f['line']}: {trace.ops[f['op']].text}): {f['kind']}")
        for n in result["kernel"]["notes"]:
            print(f"  note: {n['note']}" + (f" (op {n['op']}, line {n['line']})" if n["op"] is not None else ""))
    return 0


def summary_line(result):
    k = result["kernel"]
    kinds = ", ".join(f"{n} {kind}" for kind, n in result["failures_by_kind"].items()) or "no failures"
    return (f"{result['trace']}: Linux {k['release']} ({k['version']}), -smp {k['smp']}: {result['ops']} ops, "
            f"{result['allocs']} of {result['alloc_attempts']} allocations placed, {kinds}; "
            f"replay {k['replay_ns'] / 1e6:.1f} ms in the guest, boot {k['seconds']['boot']:.1f} s")


def cmd_confirm(args):
    trace, cxx, steps, rc = _prepare_and_check(args)
    if trace is None:
        return rc
    t0 = time.monotonic()
    data = Path(args.trace).read_bytes()
    ready = ready_kernel(args.kernel, log=_log)
    result, ksteps = replay_on(ready, trace, args.smp)
    record = confirmation_record(None, trace.path, data, args.kernel, args.smp, t0, ready=ready, result=result,
                                 verdict=verdict(trace, cxx, steps, ksteps, result))
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    k, diff = result["kernel"], record["first_difference"]
    print(f"confirm {trace.path}: {len(trace.ops)} ops, {record['allocations_compared']} allocations, vmfrag vs "
          f"Linux {k['release']} ({k['version']}), -smp {k['smp']}")
    if diff is None:
        kinds = ", ".join(f"{n} {kind}" for kind, n in result["failures_by_kind"].items()) or "no failures"
        print(f"identical: every allocation placed at the same window offset or failed the same way "
              f"({result['allocs']} placed, {kinds}): confirmed on Linux {k['release']}")
    else:
        print(f"first difference at op {diff['op']} (line {diff['line']}: {diff['text']}) after "
              f"{record['identical_before_difference']} identical allocations: {diff['kind']}: {diff['explanation']}")
        label = f"Linux {k['release']}:"
        print(f"  {'vmfrag:':<{len(label)}} {describe(diff['vmfrag'])}")
        print(f"  {label} {describe(diff['kernel'])}")
    for n in record["notes"]:
        print(f"  note: {n['note']}" + (f" (op {n['op']}, line {n['line']})" if n["op"] is not None else ""))
    return 0


def _log(message):
    print(message, file=sys.stderr, flush=True)
