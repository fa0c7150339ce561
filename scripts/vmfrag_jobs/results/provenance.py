"""The `provenance` object every result file of ours carries, for the producers (ci, nightly, fuzz,
hunt-eval) to call rather than each gathering it their own way:

    {"commit": "<git sha>", "dirty": false, "flavour": "release", "options": {...},
     "machine": {"hostname": ..., "cores": 2, "kernel": "Linux 6.1.0-...", "cpu": "...",
                 "perf_event_paranoid": 2, "perf_counters": {"dTLB-load-misses": "unsupported: EACCES"}}}

perf_counters is what the producer measured (the bench suite knows which events opened); this
module does not guess it, and leaves it empty unless told.
"""
import os
import platform
import socket
import subprocess
from pathlib import Path

from .. import paths


def git_commit(repo=paths.REPO):
    r = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if r.returncode != 0:
        return None, None
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip() != ""
    return r.stdout.strip(), dirty


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def perf_event_paranoid():
    try:
        return int(Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip())
    except (OSError, ValueError):
        return None


def machine(perf_counters=None):
    return {"hostname": socket.gethostname(), "cores": os.cpu_count(),
            "kernel": f"{platform.system()} {platform.release()}", "cpu": cpu_model(),
            "perf_event_paranoid": perf_event_paranoid(), "perf_counters": dict(perf_counters or {})}


def provenance(flavour, options, perf_counters=None, repo=paths.REPO):
    commit, dirty = git_commit(repo)
    return {"commit": commit, "dirty": dirty, "flavour": flavour, "options": options,
            "machine": machine(perf_counters)}
