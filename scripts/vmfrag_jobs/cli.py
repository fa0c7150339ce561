"""argparse front end of scripts/vmfrag. Exit codes: 0 ok, 1 a test or job failed, 2 usage or
input error (3 is passed through from the C++ CLI: divergence or invariant violation)."""
import argparse
import os
import sys

from . import bootstrap, build, paths, testing

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Subcommands implemented by the C++ `vmfrag` binary (harness/cli); the script builds the release
# flavour and hands the arguments over unchanged.
FORWARDED = {
    "replay": "replay a vmtrace against the allocator (and the reference model)",
    "gen": "write a seeded workload as a vmtrace",
    "minimize": "shrink a failing trace, keeping its first failure kind",
    "import-vmallocinfo": "turn a /proc/vmallocinfo snapshot into a trace",
    "import-malloclab": "turn a CS:APP malloc-lab .rep trace into a vmtrace",
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


def cmd_forward(args):
    prepare(("release",))
    binary = cli_binary()
    sys.stdout.flush()
    os.execv(str(binary), [str(binary), args.command, *args.rest])


def parser():
    p = argparse.ArgumentParser(prog="vmfrag", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("setup", help="install packages, configure and build (idempotent)")
    s.add_argument("--all", action="store_true", help="every flavour, not only release")
    s.set_defaults(func=cmd_setup)

    s = sub.add_parser("test", help="every test suite in every build flavour, then pytest")
    s.add_argument("--flavour", action="append", choices=sorted(build.FLAVOURS),
                   help="only these flavours (repeatable)")
    s.add_argument("--no-pytest", action="store_true", help="skip the pytest suites")
    s.set_defaults(func=cmd_test)

    s = sub.add_parser("ci", help="the main job: build, test suites, workloads with differential replay")
    s.add_argument("--seeds", type=int, default=3, help="seeds per workload (default 3)")
    s.add_argument("--ops", type=int, default=0, help="ops per workload (0 = each workload's default)")
    s.add_argument("--out", default=str(paths.RESULTS), help="where results JSON goes (default results/)")
    s.set_defaults(func=cmd_ci)

    s = sub.add_parser("bench", help="the Google Benchmark suites (bench/): JSON, summary beside issue 12's goals")
    s.add_argument("--quick", action="store_true", help="small sizes and short runs (under a minute)")
    s.add_argument("--filter", help="only benchmarks matching this regular expression")
    s.add_argument("--out", help="the JSON file (default results/bench.json, results/bench-quick.json)")
    s.add_argument("--repetitions", help="repetitions of each benchmark, 1..1000 (default 9)")
    s.add_argument("--min-time", help="seconds per repetition, 0.001..60 (default 0.1; --quick 0.005)")
    s.add_argument("--cpu", help="pin the benchmarks to this CPU (0..CPUs-1; default: not pinned)")
    s.add_argument("--verbose", action="store_true", help="show vmfrag_bench's own console table")
    s.set_defaults(func=cmd_bench)

    for name, help_text in FORWARDED.items():
        s = sub.add_parser(name, help=help_text, add_help=False)
        s.add_argument("rest", nargs=argparse.REMAINDER)
        s.set_defaults(func=cmd_forward)
    return p


def main(argv):
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (bootstrap.BootstrapError, build.BuildError) as e:
        print(f"vmfrag: error: {e}", file=sys.stderr)
        return EXIT_FAILED
