"""Build flavours: one meson build directory each, configured once, rebuilt incrementally.

  release  g++ -O2, NDEBUG (asserts vanish)           -> build/release
  asan     clang, ASan+UBSan, asserts on, full checks -> build/asan
  tsan     clang, TSan, asserts on                    -> build/tsan
  fuzz     clang, libFuzzer+ASan+UBSan, fuzz targets  -> build/fuzz  (only when clang is present;
           its tests replay the seed corpora and run a short bounded fuzzing pass)

Warnings are errors in every flavour: these scripts are how CI builds.

bench/ (-Dbenchmark=true) is on in release and asan: its code compiles on every test run and its
unit tests (TLB model, perf wrapper, baseline, recording OS) run in `scripts/vmfrag test`, under
g++ and under clang with ASan+UBSan, so it cannot rot; `scripts/vmfrag bench` then only runs the
release build it already has. tsan leaves it off: bench/ starts no threads, and the Debian
libbenchmark the suites link is not TSan-instrumented.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from . import paths
from .bootstrap import progress


@dataclass(frozen=True)
class Flavour:
    name: str
    cxx: str
    options: tuple = field(default_factory=tuple)


COMMON = ("-Dwerror=true",)
FLAVOURS = {
    "release": Flavour("release", "g++", COMMON + (
        "-Dbuildtype=release", "-Doptimization=2", "-Db_ndebug=true", "-Dbenchmark=true")),
    # -Dchecks=full: every mutating call of the free tree, the address space, the buddy allocator
    # and the vmap blocks walks its whole structure afterwards (VMF_ASSERT_FULL), so every test of
    # this flavour checks every intermediate state.
    "asan": Flavour("asan", "clang++", COMMON + (
        "-Dbuildtype=debugoptimized", "-Db_sanitize=address,undefined", "-Db_lundef=false", "-Dchecks=full",
        "-Dbenchmark=true")),
    "tsan": Flavour("tsan", "clang++", COMMON + (
        "-Dbuildtype=debugoptimized", "-Db_sanitize=thread", "-Db_lundef=false")),
    # -fno-sanitize-coverage=trace-cmp: -fsanitize=fuzzer-no-link instruments every comparison with
    # a callback (trace-cmp) on top of edge coverage. In the allocator's trees and the hunts those
    # compare offsets and sizes, never input bytes, so libFuzzer's comparison-guided mutations gain
    # nothing from them, and the callbacks were 27 % of fuzz_frag_hunt's time (fuzz/README.md).
    # Edge coverage (inline 8-bit counters, pc table), indirect calls and stack depth stay. The
    # text parser, where comparisons against input bytes are the point, gets them back: fuzz/meson.build
    # compiles fuzz_trace_parser's reader with -fsanitize-coverage=trace-cmp (target args come last).
    # fuzz/coverage_ignorelist.txt: Abseil's hash tables get no coverage at all (their probe loops
    # depend on addresses, which made a seeded run irreproducible).
    "fuzz": Flavour("fuzz", "clang++", COMMON + (
        "-Dbuildtype=debugoptimized", "-Db_sanitize=address,undefined", "-Db_lundef=false",
        "-Dfuzzing=true", "-Dtests=false",
        "-Dcpp_args=-fno-sanitize-coverage=trace-cmp "
        + shlex.quote(f"-fsanitize-coverage-ignorelist={paths.REPO / 'fuzz' / 'coverage_ignorelist.txt'}"))),
}


class BuildError(RuntimeError):
    pass


def available_flavours():
    """All flavours whose compiler exists; the clang ones are skipped without clang."""
    return [f for f in FLAVOURS.values() if shutil.which(f.cxx)]


def _run(cmd, **kw):
    r = subprocess.run(cmd, **kw)
    if r.returncode != 0:
        raise BuildError(f"{' '.join(map(str, cmd))} failed with exit code {r.returncode}")


def configure(flavour: Flavour, log=progress):
    """Configures build/<flavour> if it is new or its settings changed; otherwise does nothing, so
    a second run rebuilds nothing that did not change."""
    bdir = paths.build_dir(flavour.name)
    stamp = bdir / "vmfrag-flavour.json"
    wanted = {"cxx": flavour.cxx, "options": list(flavour.options)}
    if (bdir / "build.ninja").exists() and stamp.exists():
        have = json.loads(stamp.read_text())
        if have == wanted:
            return
        if have.get("cxx") != wanted["cxx"]:
            shutil.rmtree(bdir)
    env = dict(os.environ, CXX=flavour.cxx)
    log(f"vmfrag: configuring {flavour.name} in {bdir.relative_to(paths.REPO)}")
    if (bdir / "build.ninja").exists():
        # `meson configure`, not `setup --reconfigure`: meson 1.0 ignores -Dcpp_args given to the
        # latter once the directory is configured. ninja regenerates build.ninja before building.
        _run(["meson", "configure", str(bdir), *flavour.options], env=env, stdout=subprocess.DEVNULL)
    else:
        _run(["meson", "setup", str(bdir), str(paths.REPO), *flavour.options], env=env, stdout=subprocess.DEVNULL)
    stamp.write_text(json.dumps(wanted))


def build(flavour: Flavour, log=progress):
    configure(flavour, log)
    bdir = paths.build_dir(flavour.name)
    r = subprocess.run(["ninja", "-C", str(bdir)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise BuildError(f"building {flavour.name} failed")
    if "no work to do" not in r.stdout:
        log(f"vmfrag: built {flavour.name}")
    return bdir
