"""Installs the Debian packages the project needs, idempotently and quietly.

Nothing is installed when everything is present (one dpkg-query, no output). Otherwise apt-get
update runs once and apt-get install installs only what is missing.
"""
import os
import shutil
import subprocess
import sys


def progress(message):
    """Setup progress goes to stderr: a forwarded command's stdout (JSON, a trace) stays clean."""
    print(message, file=sys.stderr, flush=True)


# Build: meson/ninja, both compilers, clang's sanitizer and libFuzzer runtimes.
# Libraries: GoogleTest/GoogleMock, Google Benchmark, Boost (Boost.Container), abseil (flat_hash_map), nlohmann/json (results
# JSON), CLI11 (the C++ command line).
# Python side (Debian's /usr/bin/python3 only): pytest, jinja2, rich, scipy (hunt-eval statistics),
# yaml (the workflow tests read .github/workflows/).
# Benchmarks: libbenchmark-tools is Google Benchmark's compare.py (/usr/share/benchmark/compare.py,
# U test between two `scripts/vmfrag bench` JSON files); it imports scipy and numpy but its Debian
# package does not depend on them.
# Kernel replay (kernel/, `kernel-replay`, `confirm`): QEMU, a static busybox and cpio for the guest;
# make, gcc-12 (the compiler of Debian 12's kernels), dwarves (pahole: 6.12's modules get BTF) and
# the libraries linux-kbuild's tools link (libelf1, libssl3) to build the module. The kernels
# themselves are never installed: vmfrag_jobs/kernel/packages.py fetches them with apt-get download.
PACKAGES = [
    "meson", "ninja-build", "pkg-config", "g++", "clang", "libclang-rt-14-dev",
    "libgtest-dev", "libgmock-dev", "libbenchmark-dev", "libboost-dev", "libabsl-dev", "nlohmann-json3-dev",
    "libcli11-dev",
    "python3-pytest", "python3-jinja2", "python3-rich", "python3-yaml",
    "libbenchmark-tools", "python3-scipy", "python3-numpy",
    "qemu-system-x86", "busybox-static", "cpio", "make", "gcc-12", "dwarves", "libelf1", "libssl3",
]
# The report's browser test (scripts/tests/test_report_browser.py) installs these itself when it
# runs, through ensure_packages, so that jobs which never open a browser do not pull in Chromium.
BROWSER_PACKAGES = ["chromium"]


class BootstrapError(RuntimeError):
    pass


def missing_packages(packages=PACKAGES):
    """Names from `packages` that dpkg does not report as installed."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages],
        capture_output=True, text=True, check=False).stdout
    installed = {line.split()[0].split(":")[0] for line in out.splitlines()
                 if len(line.split()) >= 2 and line.split()[1].startswith("ii")}
    return [p for p in packages if p not in installed]


def ensure_packages(packages=PACKAGES, log=progress):
    missing = missing_packages(packages)
    if not missing:
        return []
    prefix = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise BootstrapError("missing packages and not root (no sudo): " + " ".join(missing))
        prefix = ["sudo", "-n"]
    log(f"vmfrag: installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        r = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            raise BootstrapError(f"{' '.join(cmd[:2])} failed with exit code {r.returncode}")
    still = missing_packages(packages)
    if still:
        raise BootstrapError("still missing after apt-get install: " + " ".join(still))
    return missing
