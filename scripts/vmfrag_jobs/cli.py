"""argparse front end of scripts/vmfrag.

Its own commands (setup, test, ci, nightly, bench, report, fuzz, hunt-eval, kernel-replay, confirm) validate every option before installing or building anything.
The harness commands (replay, gen, minimize, import-*, workloads) belong to the C++ `vmfrag`
binary: after building it, the script hands it the arguments exactly as given, in any order,
`--help` included. Ctrl-C ends any command with one line and exit 130.
"""
import argparse
import os
import signal
import sys

from . import bootstrap, build, kernel_job, paths, testing
from .arguments import bounded_float, bounded_int

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = "vmfrag hunts fragmentation failures in a vmalloc-style allocator: one entry point for every job."
EPILOG = """exit codes: 0 ok; 1 a test or job failed; 2 usage or input error; 3 (from the harness commands)
a divergence from the reference model or a broken invariant; 130 interrupted.
Each harness command has its own --help, e.g. 'scripts/vmfrag replay --help'."""

# Subcommands implemented by the C++ `vmfrag` binary (harness/cli); the script builds the release
# flavour and hands the arguments over unchanged.
FORWARDED = {
    "replay": "replay a vmtrace against the allocator (and the reference model)",
    "gen": "write a seeded workload as a vmtrace",
    "minimize": "shrink a failing trace, keeping its first failure kind",
    "import-vmallocinfo": "turn a /proc/vmallocinfo snapshot into a trace",
    "import-malloclab": "turn a CS:APP malloc-lab .rep trace into a vmtrace",
    "decode": "a fuzz input (any bytes) as the vmtrace its target replays",
    "workloads": "list the workloads gen knows",
}


def prepare(flavour_names=("release",)):
    bootstrap.ensure_packages()
    flavours = [build.FLAVOURS[n] for n in flavour_names]
    for f in flavours:
        build.build(f)
    return flavours


def cli_binary():
    return paths.build_dir("release") / "harness" / "cli" / "vmfrag"


def cmd_setup(args):
    flavours = [f.name for f in build.available_flavours()] if args.all else ["release"]
    prepare(flavours)
    return EXIT_OK


def cmd_test(args):
    bootstrap.ensure_packages()
    flavours = build.available_flavours()
    if args.flavour:
        flavours = [f for f in flavours if f.name in args.flavour]
    totals = testing.run_all(flavours, with_pytest=not args.no_pytest)
    print(totals.line())
    return EXIT_OK if totals.ok else EXIT_FAILED


def cmd_ci(args):
    from . import ci_job
    return ci_job.run(args)


def cmd_bench(args):
    from . import bench_job
    return bench_job.run(args)


def forward(command, argv):
    """Builds the release flavour, then becomes the C++ binary with `argv` untouched."""
    prepare(("release",))
    binary = cli_binary()
    sys.stdout.flush()
    # Python ignores SIGPIPE and exec keeps ignored signals: restore the default, so that
    # `scripts/vmfrag gen ... | head` ends quietly like any Unix filter.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.execv(str(binary), [str(binary), command, *argv])


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line, `vmfrag: error: ...`, exit 2 (the harness binary's form too)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"vmfrag: error: {message} (see '{self.prog} --help')\n")


def parser():
    p = OneLineErrorParser(prog="vmfrag", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("setup", help="install packages, configure and build (idempotent)")
    s.add_argument("--all", action="store_true", help="every flavour, not only release")
    s.set_defaults(func=cmd_setup)

    s = sub.add_parser("test", help="every test suite in every build flavour, then pytest")
    s.add_argument("--flavour", action="append", choices=sorted(build.FLAVOURS),
                   help="only these flavours (repeatable)")
    s.add_argument("--no-pytest", action="store_true", help="skip the pytest suites")
    s.set_defaults(func=cmd_test)

    from . import ci_job
    s = sub.add_parser("ci", help="the main job: regressions, fuzzing, workloads and benchmarks within a time "
                                  "budget, then the HTML report", description=ci_job.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ci_job.add_arguments(s, bounded_int, bounded_float)
    s.set_defaults(func=cmd_ci)

    from . import nightly_job
    s = sub.add_parser("nightly", help="the long stress job: workloads, fuzzing and hunt trials for hours, "
                                       "sharded, resumable", description=nightly_job.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    nightly_job.add_arguments(s, bounded_int, bounded_float)
    s.set_defaults(func=lambda a: nightly_job.run(a))

    from . import fuzz_job, hunt_eval, report
    report.add_report_parser(sub)

    s = sub.add_parser("fuzz", help="run one libFuzzer target for a time budget; findings as vmtrace files")
    fuzz_job.add_arguments(s)
    s.set_defaults(func=lambda a: fuzz_job.main_with(a))

    s = sub.add_parser("hunt-eval", help="fuzz_frag_hunt with/without state features vs blind search, "
                                         "trials x CPU seconds, Mann-Whitney U and A12")
    hunt_eval.add_arguments(s)
    s.set_defaults(func=lambda a: hunt_eval.main_with(a))
    kernel_job.add_kernel_parsers(sub, bounded_int)

    s = sub.add_parser("bench", help="the Google Benchmark suites (bench/): JSON, summary beside issue 12's goals")
    s.add_argument("--quick", action="store_true", help="small sizes and short runs (under a minute)")
    s.add_argument("--filter", help="only benchmarks matching this regular expression")
    s.add_argument("--out", help="the JSON file (default results/bench.json, results/bench-quick.json)")
    s.add_argument("--repetitions", help="repetitions of each benchmark, 1..1000 (default 9)")
    s.add_argument("--min-time", help="seconds per repetition, 0.001..60 (default 0.1; --quick 0.005)")
    s.add_argument("--cpu", help="pin the benchmarks to this CPU (0..CPUs-1; default: not pinned)")
    s.add_argument("--verbose", action="store_true", help="show vmfrag_bench's own console table")
    s.set_defaults(func=cmd_bench)

    # Listed for --help only: main() hands these to the binary before argparse sees them.
    for name, help_text in FORWARDED.items():
        sub.add_parser(name, help=help_text + f" (see 'vmfrag {name} --help')", add_help=False)
    return p


def main(argv):
    try:
        if argv and argv[0] in FORWARDED:
            forward(argv[0], argv[1:])
        args = parser().parse_args(argv)
        return args.func(args)
    except (bootstrap.BootstrapError, build.BuildError, kernel_job.KernelError) as e:
        print(f"vmfrag: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except kernel_job.TraceError as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("vmfrag: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
