"""Replays traces on a real Linux kernel (`kernel-replay`) and compares with vmfrag (`confirm`).

The kernel is one of Debian's own (`--kernel 6.1` or `6.12`): its image, headers and kbuild packages
are fetched with `apt-get download` into results/kernel-cache/debs/ (kept there: Debian drops
superseded kernels from the archive) and unpacked with `dpkg-deb` under results/kernel-cache/;
nothing is installed on the host and nothing under /boot is touched. The module in kernel/ is built
against those headers, packed with the trace's ops (`encode_ops`) and busybox into an initramfs,
and the kernel boots under `qemu-system-x86_64 -accel tcg`. The module prints one line per op
(placement relative to its window, or the failure, and the kernel's lazy counter); `parse_console`
reads them back, refusing loudly anything incomplete.

The kernel says only "placed at X" or "failed". Everything else in the replay JSON (failure kinds,
free bytes, maps, final statistics) comes from `WindowModel`: the window's areas rebuilt from the
kernel's own placements, with a purge wherever the kernel's lazy counter dropped. A failure where
the window model still holds an aligned fit is the kernel's own kind: `alignment-search-miss`
(alignment above a page: the kernel looks for size + align - 1 bytes), `no-physical-memory` (fewer
pages available than the area needs) or `unexplained`.
"""
import bisect
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .results.writing import write_atomically

PAGE = 4096
U64_LIMIT = 1 << 64
# The window sits 1 TiB below the top of the kernel's 32 TiB vmalloc range and its start is
# aligned to the trace's largest alignment: above 1 TiB that cannot be honoured.
MAX_ALIGN = 1 << 40
SERIES = {"6.1": "linux-image-amd64", "6.12": "linux-image-6.12-amd64"}
DEFAULT_SERIES = "6.1"
GUEST_MEMORY = "512M"
MODULE_SOURCES = ("Kbuild", "vmfrag_replay.c")
MAGIC = b"VMFRAGK1"
HEADER = struct.Struct("<8s7Q")
OP = struct.Struct("<2I3Q")
MAPS = 16  # failures that carry a map, as `replay --maps` defaults to


def cache_dir():
    return paths.RESULTS / "kernel-cache"


class KernelError(RuntimeError):
    """The kernel side could not run or said nothing usable: exit 1, never a silent pass."""


class TraceError(ValueError):
    """A trace this command cannot replay in the kernel: `FILE:LINE: error: ...`, exit 2."""


# --- the trace ------------------------------------------------------------------------------

@dataclass
class Op:
    index: int  # 0-based, over ops only
    line: int
    kind: str   # 'a', 'f' or 'p'
    id: int = 0
    size: int = 0
    align: int = PAGE
    text: str = ""


@dataclass
class Trace:
    path: str
    region: int
    guard: int = 1
    lazy: int = 8192
    phys: int = 256 << 20
    backing: str = "none"
    ops: list = field(default_factory=list)


SIZE = re.compile(r"([0-9]+)([KMGT]?)")
SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    m = SIZE.fullmatch(text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * SUFFIX[m.group(2)]


def read_trace(path, display=None):
    """Reads a vmtrace that the C++ reader has already accepted (so its errors are the reader's
    own), and refuses, one line each, what the kernel replay cannot do: k, m and h ops (kmalloc,
    vm_map_ram and vmalloc_huge have no counterpart in the module) and alignments above 1 TiB."""
    name = display or str(path)
    t = Trace(path=name, region=0)
    with open(path, "rb") as f:
        data = f.read()
    for lineno, raw in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        words = raw.split("#", 1)[0].split()
        if not words or words[0] == "vmtrace":
            continue
        key, args = words[0], words[1:]
        try:
            if key in ("region", "phys"):
                setattr(t, key, parse_size(args[0]))
            elif key in ("guard", "lazy"):
                setattr(t, key, int(args[0]))
            elif key == "backing":
                t.backing = args[0]
            elif key == "a":
                align = parse_size(args[2]) if len(args) > 2 else PAGE
                if align > MAX_ALIGN:
                    raise TraceError(f"{name}:{lineno}: error: align {args[2]} is above what a window "
                                     f"in the kernel's vmalloc range can honour (1T)")
                t.ops.append(Op(len(t.ops), lineno, "a", int(args[0]), parse_size(args[1]), align,
                                " ".join(words)))
            elif key == "f":
                t.ops.append(Op(len(t.ops), lineno, "f", int(args[0]), text=" ".join(words)))
            elif key == "p":
                t.ops.append(Op(len(t.ops), lineno, "p", text="p"))
            elif key in ("k", "m", "h"):
                what = {"k": "kmalloc", "m": "vm_map_ram", "h": "vmalloc_huge"}[key]
                raise TraceError(f"{name}:{lineno}: error: op '{key}' ({what}) cannot be replayed in the "
                                 f"kernel: kernel-replay and confirm replay only a, f and p")
            else:
                raise TraceError(f"{name}:{lineno}: error: unknown directive or op '{key[:40]}'")
        except (IndexError, ValueError) as e:
            if isinstance(e, TraceError):
                raise
            raise TraceError(f"{name}:{lineno}: error: malformed '{key[:40]}' line") from None
    if not t.region:
        raise TraceError(f"{name}: error: missing 'region' directive")
    return t


def area_need(size, guard):
    """The bytes an area takes with its guard, as vmfrag counts them; None when the size is 0 or
    the need overflows (invalid-argument in vmfrag)."""
    if size == 0:
        return None
    need = -(-size // PAGE) * PAGE + guard * PAGE
    return need if need < U64_LIMIT else None


def kernel_request(size, guard):
    """(size, no_guard) to ask the kernel for, so that its area, whose guard is always one page
    (none with VM_NO_GUARD), is exactly as long as vmfrag's area with `guard` pages of guard."""
    if guard == 0:
        return size, 1
    need = area_need(size, guard)
    if need is None:
        return size, 0  # the kernel refuses it too: size 0, or page rounding overflows
    return need - PAGE, 0


def encode_ops(trace):
    """The module's input (the layout is in kernel/vmfrag_replay.c): a header, then one 32-byte
    record per op. Each `a` gets its own slot; `f` names the slot of its id's latest `a`."""
    slot_of, out, nslots, no_guard = {}, [], 0, 1 if trace.guard == 0 else 0
    for op in trace.ops:
        if op.kind == "a":
            size, _ = kernel_request(op.size, trace.guard)
            out.append(OP.pack(ord("a"), 0, size, op.align, nslots))
            slot_of[op.id] = nslots
            nslots += 1
        elif op.kind == "f":
            out.append(OP.pack(ord("f"), 0, 0, 0, slot_of.pop(op.id)))
        else:
            out.append(OP.pack(ord("p"), 0, 0, 0, 0))
    max_align = max([PAGE] + [op.align for op in trace.ops if op.kind == "a"])
    header = HEADER.pack(MAGIC, trace.region, no_guard, 1 if trace.lazy == 0 else 0, max_align,
                         len(trace.ops), nslots, 0)
    return header + b"".join(out)


# --- the guest's console -------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str        # 'a', 'f' or 'p'
    status: str      # 'ok' or 'fail' (a), 'ok' or 'none' (f), 'ok' (p)
    value: int = 0   # a ok: offset in the window; a fail: pages available
    lazy_nr: int = None  # the kernel's vmap_lazy_nr after the op (None: symbol not found)


@dataclass
class KernelRun:
    release: str
    version: str
    window: int
    cpus: int
    lazy_max: int
    lazy_start: int
    replay_ns: int
    outcomes: list


BEGIN = re.compile(r'begin release=(\S+) version="([^"]*)" window=0x([0-9a-f]+) region=(\d+) cpus=(\d+) '
                   r'lazy_max=(\d+) lazy_nr=(found|missing) eager=(\d) ops=(\d+) lazy_start=(\d+|-)$')
OUTCOME = re.compile(r"o (\d+) (a (?:ok|fail) \d+|f (?:ok|none)|p ok) (\d+|-)$")
END = re.compile(r"end ops=(\d+) ns=(\d+)$")
INSMOD_FAILED = "vmfrag-init: insmod failed"


def _tail(text, n=15):
    lines = [ln for ln in text.replace("\r", "").splitlines() if ln.strip()]
    return "\n".join("  | " + ln for ln in lines[-n:]) or "  | (nothing)"


def parse_console(text, trace):
    """The module's lines out of the guest's console (kernel messages around and `\\r\\n` line
    ends are ignored). Raises KernelError when the module did not load, printed nothing, stopped
    early, or printed ops that are not the trace's."""
    if not text.strip():
        raise KernelError("the guest printed nothing: no kernel, no module output")
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n")]
    if INSMOD_FAILED in lines:
        raise KernelError("the module did not load (insmod failed); the guest's console ends with:\n"
                          + _tail(text))
    begin = next((BEGIN.search(ln) for ln in lines if BEGIN.search(ln)), None)
    if begin is None:
        raise KernelError("the module printed no 'begin' line; the guest's console ends with:\n" + _tail(text))
    if int(begin.group(4)) != trace.region or int(begin.group(9)) != len(trace.ops):
        raise KernelError(f"the module replayed another input (region {begin.group(4)}, "
                          f"{begin.group(9)} ops) than this trace (region {trace.region}, {len(trace.ops)} ops)")
    outcomes, end = [], None
    for ln in lines:
        m = OUTCOME.match(ln)
        if m:
            index = int(m.group(1))
            if index != len(outcomes) or index >= len(trace.ops):
                raise KernelError(f"the module's output is out of order at op {index}")
            words = m.group(2).split()
            if words[0] != trace.ops[index].kind:
                raise KernelError(f"the module replayed op {index} as '{words[0]}', the trace has "
                                  f"'{trace.ops[index].kind}' (line {trace.ops[index].line})")
            lazy = None if m.group(3) == "-" else int(m.group(3))
            outcomes.append(Outcome(words[0], words[1], int(words[2]) if len(words) > 2 else 0, lazy))
        elif END.match(ln):
            end = END.match(ln)
    if end is None or int(end.group(1)) != len(trace.ops) or len(outcomes) != len(trace.ops):
        raise KernelError(f"the module's output stops after {len(outcomes)} of {len(trace.ops)} ops; "
                          "the guest's console ends with:\n" + _tail(text))
    lazy_start = None if begin.group(10) == "-" else int(begin.group(10))
    return KernelRun(release=begin.group(1), version=begin.group(2), window=int(begin.group(3), 16),
                     cpus=int(begin.group(5)), lazy_max=int(begin.group(6)), lazy_start=lazy_start,
                     replay_ns=int(end.group(2)), outcomes=outcomes)


# --- the window, rebuilt from the kernel's answers ---------------------------------------------

class WindowModel:
    """The window's address space as the kernel's answers imply it: live areas at the offsets the
    kernel gave, areas freed since the last purge held lazily. Not an allocator: it never chooses
    an offset, it records the kernel's and checks that they do not overlap. Busy ranges (live and
    lazy) never overlap one another and `order` keeps their starts sorted, so a placement is
    checked against its neighbours only; free extents are walked only at failures."""

    def __init__(self, region):
        self.region = region
        self.live = {}   # start -> need
        self.lazy = {}   # start -> need
        self.order = []  # starts of live and lazy ranges, ascending
        self.lazy_bytes = 0

    def busy(self):
        return [(s, self.live[s], "busy") if s in self.live else (s, self.lazy[s], "lazy") for s in self.order]

    def free_extents(self):
        out, at = [], 0
        for s, n, _ in self.busy():
            if s > at:
                out.append((at, s - at))
            at = s + n
        if at < self.region:
            out.append((at, self.region - at))
        return out

    def overlapping(self, start, need):
        """Starts of the busy ranges that overlap [start, start + need)."""
        found, j = [], bisect.bisect_left(self.order, start + need) - 1
        while j >= 0:
            s = self.order[j]
            if s + self.live.get(s, self.lazy.get(s, 0)) <= start:
                break
            found.append(s)
            j -= 1
        return found

    def place(self, start, need):
        """Records the kernel's area; ranges still lazy under it mean the kernel purged (True)."""
        hit = self.overlapping(start, need)
        if start + need > self.region or any(s in self.live for s in hit):
            raise KernelError(f"the kernel placed an area of {need} bytes at window offset {start:#x}, "
                              "which the window model holds live or outside the window")
        purged = bool(hit)
        if purged:
            self.purge()
        self.live[start] = need
        bisect.insort(self.order, start)
        return purged

    def free(self, start):
        self.lazy[start] = self.live.pop(start)
        self.lazy_bytes += self.lazy[start]

    def purge(self):
        if self.lazy:
            self.order = [s for s in self.order if s in self.live]
            self.lazy.clear()
            self.lazy_bytes = 0

    def fits(self, need, align):
        """Whether an aligned run of `need` bytes is free (vmfrag's exact rule)."""
        for s, n in self.free_extents():
            a = -(-s // align) * align
            if a + need <= s + n:
                return True
        return False

    def stats(self):
        free = self.free_extents()
        free_bytes = sum(n for _, n in free)
        largest = max((n for _, n in free), default=0)
        return {"free_bytes": free_bytes, "largest_free_bytes": largest, "free_extents": len(free),
                "lazy_bytes": self.lazy_bytes}

    def address_map(self):
        runs = [(s, n, "free") for s, n in self.free_extents()] + self.busy()
        return [[s, n, what] for s, n, what in sorted(runs)]


def classify_failure(model, op, guard, avail_pages):
    need = area_need(op.size, guard)
    if need is None:
        return "invalid-argument"
    if not model.fits(need, op.align):
        return "virtual-fragmentation" if model.stats()["free_bytes"] >= need else "no-virtual-space"
    if need // PAGE > avail_pages:
        return "no-physical-memory"
    if op.align > PAGE:
        return "alignment-search-miss"
    return "unexplained"


def kernel_result(trace, run, meta, maps=MAPS, window_lazy=None):
    """The replay JSON (`replay --json`'s schema) of a kernel run, plus a `kernel` object.
    `window_lazy`, when a list, receives the window's lazily held bytes after each op."""
    model = WindowModel(trace.region)
    guard = trace.guard
    start_of, live_bytes, live, peak = {}, {}, 0, 0
    placements, failures, by_kind, notes = {}, [], {}, []
    allocs = attempts = frees = frees_of_failed = purges = purges_seen = 0
    lazy_prev = run.lazy_start
    max_outside = 0
    for op, out in zip(trace.ops, run.outcomes):
        dropped = out.lazy_nr is not None and lazy_prev is not None and out.lazy_nr < lazy_prev
        if op.kind == "a":
            attempts += 1
            if dropped:
                model.purge()
                purges_seen += 1
            if out.status == "ok":
                need = area_need(op.size, guard)
                if need is None:
                    raise KernelError(f"the kernel accepted op {op.index} (line {op.line}: {op.text}), "
                                      "whose size vmfrag refuses")
                if model.place(out.value, need):  # lazy ranges reused: the kernel purged
                    purges_seen += 1
                start_of[op.id] = out.value
                live_bytes[op.id] = need - guard * PAGE
                live += live_bytes[op.id]
                placements[str(op.id)] = out.value
                allocs += 1
            else:
                if model.lazy:
                    model.purge()  # alloc_vmap_area purges and retries once before failing
                    purges_seen += 1
                kind = classify_failure(model, op, guard, out.value)
                by_kind[kind] = by_kind.get(kind, 0) + 1
                st = model.stats()
                need = area_need(op.size, guard)
                unusable = (sum(n for _, n in model.free_extents() if n < need) / st["free_bytes"]
                            if need is not None and st["free_bytes"] else 0.0)
                rec = {"op": op.index, "line": op.line, "id": op.id, "size": op.size, "align": op.align,
                       "kind": kind, "free_bytes": st["free_bytes"],
                       "largest_free_bytes": st["largest_free_bytes"], "lazy_bytes": st["lazy_bytes"],
                       "unusable_free_index": unusable, "available_pages": out.value}
                if len(failures) < maps:
                    rec["map"] = model.address_map()
                failures.append(rec)
                start_of.pop(op.id, None)
        elif op.kind == "f":
            if out.status == "ok":
                if op.id not in start_of:
                    raise KernelError(f"the kernel freed op {op.index} (line {op.line}), whose allocation "
                                      "the window model has as failed")
                start = start_of.pop(op.id)
                freed_pages = model.live[start] // PAGE
                model.free(start)
                live -= live_bytes.pop(op.id)
                frees += 1
                own_lazy = model.lazy_bytes // PAGE
                if trace.lazy == 0:
                    purged = True  # the module purges after every free
                elif out.lazy_nr is None or lazy_prev is None:
                    purged = own_lazy > run.lazy_max  # the kernel's rule, without its counter
                else:
                    # Without a purge the counter only grows, by this area's pages at least.
                    purged = out.lazy_nr < lazy_prev + freed_pages
                    if purged and own_lazy <= run.lazy_max:
                        notes.append({"op": op.index, "line": op.line,
                                      "note": f"the kernel purged after this free with {own_lazy} of the "
                                              f"window's pages lazily held (threshold {run.lazy_max}): "
                                              "pages freed outside the window crossed it"})
                if purged:
                    model.purge()
                    purges_seen += 1
            else:
                if op.id in start_of:
                    raise KernelError(f"the kernel found op {op.index}'s area (line {op.line}) already failed")
                frees_of_failed += 1
        else:
            purges += 1
            model.purge()
            purges_seen += 1
        if out.lazy_nr is not None:
            max_outside = max(max_outside, out.lazy_nr - model.lazy_bytes // PAGE)
        lazy_prev = out.lazy_nr
        if window_lazy is not None:
            window_lazy.append(model.lazy_bytes)
        peak = max(peak, live)
    st = model.stats()
    final = {"free_bytes": st["free_bytes"], "largest_free_bytes": st["largest_free_bytes"],
             "free_extents": st["free_extents"], "lazy_bytes": st["lazy_bytes"], "live_bytes": live,
             "live_areas": len(live_bytes), "purges": purges_seen,
             "external_fragmentation": 1 - st["largest_free_bytes"] / st["free_bytes"]
             if st["free_bytes"] else 0.0}
    if trace.lazy not in (0, run.lazy_max):
        notes.insert(0, {"op": None, "line": None,
                         "note": f"the trace's lazy threshold is {trace.lazy} pages, this kernel's is "
                                 f"{run.lazy_max} (fls(CPUs) x 8192): the kernel purges at its own"})
    if run.cpus > 1:
        notes.append({"op": None, "line": None,
                      "note": f"{run.cpus} CPUs: the kernel's lazy threshold is fls({run.cpus}) x 8192 = "
                              f"{run.lazy_max} pages; 6.10+'s per-node vmap pools serve only requests for the "
                              "whole vmalloc range, so the window's areas never come from them"})
    kernel = dict(meta)
    kernel.update({"release": run.release, "version": run.version, "cpus": run.cpus,
                   "lazy_max_pages": run.lazy_max,
                   "lazy_counter": "found" if run.lazy_start is not None else "missing",
                   "max_lazy_pages_outside_window": max_outside,
                   "replay_ns": run.replay_ns, "notes": notes})
    return {
        "format": "vmfrag-replay", "version": 1, "trace": trace.path, "region_bytes": trace.region,
        "guard_pages": trace.guard, "lazy_pages": trace.lazy, "backing": trace.backing,
        "ops": len(trace.ops), "allocs": allocs, "alloc_attempts": attempts, "frees": frees,
        "frees_of_failed": frees_of_failed, "purges_requested": purges, "peak_live_bytes": peak,
        "failures_by_kind": dict(sorted(by_kind.items())), "failures": failures, "placements": placements,
        "final": final, "differential": False, "divergence": None, "invariant_violation": None,
        "kernel": kernel,
    }


# --- Debian's kernel packages --------------------------------------------------------------------

@dataclass
class Kernel:
    series: str
    abi: str        # 6.1.0-57-amd64
    version: str    # 6.1.192-3 (the Debian package version)
    packages: list  # [image, headers, headers-common, kbuild] package names
    debs: dict = field(default_factory=dict)  # package -> file in the cache
    root: Path = None  # unpacked tree

    @property
    def headers_dir(self):
        return self.root / "usr" / "src" / f"linux-headers-{self.abi}"

    @property
    def vmlinuz(self):
        return self.root / "boot" / f"vmlinuz-{self.abi}"


def apt_show(*packages):
    """Each known package's candidate fields from one `apt-cache show` (a package apt does not
    know is left out)."""
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages], capture_output=True, text=True)
    found = {}
    for stanza in r.stdout.split("\n\n"):
        fields, key = {}, None
        for ln in stanza.splitlines():
            if ln[:1] in (" ", "\t") and key:
                fields[key] += " " + ln.strip()
            elif ":" in ln:
                key, value = ln.split(":", 1)
                fields[key] = value.strip()
        if fields.get("Package") in packages:
            found.setdefault(fields["Package"], fields)
    return found


def depends(fields):
    """Package names in Depends (each alternative group's names, versions dropped)."""
    return [alt.strip().split()[0] for group in fields.get("Depends", "").split(",")
            for alt in group.split("|") if alt.strip()]


def resolve_kernel(series):
    """The current kernel of a series in the apt lists: metapackage -> image -> headers -> common
    and kbuild, all at the image's version. None when apt's lists do not have it."""
    meta = apt_show(SERIES[series]).get(SERIES[series])
    image = next((d for d in depends(meta) if d.startswith("linux-image-")), None) if meta else None
    if not image:
        return None
    abi = image[len("linux-image-"):]
    headers = f"linux-headers-{abi}"
    found = apt_show(image, headers)
    img, hdr = found.get(image), found.get(headers)
    if not img or not hdr or hdr.get("Version") != img.get("Version"):
        return None
    deps = depends(hdr)
    common = next((d for d in deps if d.startswith("linux-headers-") and d.endswith("-common")), None)
    kbuild = next((d for d in deps if d.startswith("linux-kbuild-")), None)
    if not common or not kbuild:
        return None
    return Kernel(series, abi, img["Version"], [image, headers, common, kbuild])


def manifest_path(series):
    return cache_dir() / f"linux-{series}.json"


def deb_name(package, version, deb):
    """Whether `deb` is apt-get download's file of that package version (name_version_arch.deb,
    an epoch's ':' written %3a)."""
    return deb.name.startswith(f"{package}_{version.replace(':', '%3a')}_") and deb.name.endswith(".deb")


def download(kernel, log):
    """Fetches the four packages into the cache with `apt-get download`, unless they are there."""
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    present = sorted(debs.glob("*.deb"))
    missing = [p for p in kernel.packages if not any(deb_name(p, kernel.version, d) for d in present)]
    if missing:
        log(f"vmfrag: downloading {', '.join(missing)} {kernel.version}")
        tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=debs))
        try:
            r = subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
                                *[f"{p}={kernel.version}" for p in missing]],
                               cwd=tmp, capture_output=True, text=True)
            if r.returncode != 0:
                why = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
                raise KernelError(f"cannot download Linux {kernel.abi} ({kernel.version}) from the archive: {why}. "
                                  "Debian drops superseded kernels; run 'apt-get update' for the current one, "
                                  f"or put the .deb files in {debs}")
            for deb in tmp.glob("*.deb"):  # whole files only: a killed download never lands in debs/
                os.replace(deb, debs / deb.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        present = sorted(debs.glob("*.deb"))
    kernel.debs = {}
    for p in kernel.packages:
        found = [d for d in present if deb_name(p, kernel.version, d)]
        if not found:
            raise KernelError(f"apt-get download did not deliver {p} {kernel.version}")
        kernel.debs[p] = found[0]


def unpack(kernel, log):
    """Unpacks into results/kernel-cache/<abi>_<version>/ (the image's /boot only: its modules are
    not needed), atomically: a half-unpacked tree never looks complete."""
    root = cache_dir() / f"{kernel.abi}_{kernel.version}"
    kernel.root = root
    if (root / ".complete").exists():
        return
    log(f"vmfrag: unpacking Linux {kernel.abi} into {root}")
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        for package, deb in kernel.debs.items():
            if package.startswith("linux-image-"):
                tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
                r = subprocess.run(["tar", "-x", "-C", str(partial), "--wildcards", "./boot/*"], stdin=tar.stdout,
                                   capture_output=True, text=True)
                tar.stdout.close()
                if tar.wait() != 0 or r.returncode != 0:
                    raise KernelError(f"cannot unpack {deb.name}: {r.stderr.strip()}")
            else:
                r = subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], capture_output=True, text=True)
                if r.returncode != 0:
                    raise KernelError(f"cannot unpack {deb.name}: {r.stderr.strip()}")
        (partial / ".complete").write_text(kernel.version + "\n")
        if root.exists() and not (root / ".complete").exists():
            shutil.rmtree(root)  # left by a run that died while replacing it
        try:
            os.rename(partial, root)
        except OSError:
            if not (root / ".complete").exists():  # another run unpacked it meanwhile: use theirs
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def fetch_kernel(series, log=print):
    """The kernel of `series`, downloaded and unpacked; the exact versions are recorded in
    results/kernel-cache/linux-<series>.json and reused when apt's lists no longer have them."""
    kernel = resolve_kernel(series)
    manifest = manifest_path(series)
    if kernel is None:
        if not manifest.exists():
            raise KernelError(f"apt's package lists have no Linux {series} ({SERIES[series]}): run 'apt-get update'")
        m = json.loads(manifest.read_text())
        kernel = Kernel(series, m["abi"], m["version"], m["packages"])
        log(f"vmfrag: apt's lists no longer have Linux {series}; using the cached {kernel.abi} {kernel.version}")
    download(kernel, log)
    unpack(kernel, log)
    write_atomically(manifest, json.dumps({"series": series, "abi": kernel.abi, "version": kernel.version,
                                           "packages": kernel.packages,
                                           "debs": {p: d.name for p, d in kernel.debs.items()}}, indent=2) + "\n")
    return kernel


def build_module(kernel, log=print):
    """Builds kernel/ against the unpacked headers into <tree>/module/, once per source change."""
    src = paths.REPO / "kernel"
    sources = {name: (src / name).read_bytes() for name in MODULE_SOURCES}
    stamp_text = json.dumps({n: hash_bytes(b) for n, b in sources.items()}, sort_keys=True)
    out = kernel.root / "module"
    ko = out / "vmfrag_replay.ko"
    if ko.exists() and (out / ".sources").exists() and (out / ".sources").read_text() == stamp_text:
        return ko
    # The headers' Makefile includes the common tree by its absolute /usr/src path: point it here.
    hdr_makefile = kernel.headers_dir / "Makefile"
    text = hdr_makefile.read_text()
    common = re.search(r"include (\S*/usr/src/(linux-headers-\S+-common)/Makefile)", text)
    if not common:
        raise KernelError(f"unexpected {hdr_makefile}: no include of the common headers")
    wanted = f"include {kernel.root}/usr/src/{common.group(2)}/Makefile\n"
    if text != wanted:
        write_atomically(hdr_makefile, wanted)
    # Built in a directory of its own, then the .ko and its stamp replace the old ones: runs that
    # build at the same time never see a half-written module.
    tmp = Path(tempfile.mkdtemp(prefix=".module.", dir=kernel.root))
    try:
        for name, data in sources.items():
            (tmp / name).write_bytes(data)
        log(f"vmfrag: building the module for {kernel.abi}")
        env = {k: v for k, v in os.environ.items()
               if k not in ("ARCH", "CROSS_COMPILE", "KBUILD_OUTPUT", "MAKEFLAGS")}
        r = subprocess.run(["make", "-s", "-C", str(kernel.headers_dir), f"M={tmp}", "modules"],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0 or not (tmp / ko.name).exists():
            raise KernelError(f"building the module for {kernel.abi} failed:\n{_tail(r.stdout + r.stderr, 25)}")
        out.mkdir(exist_ok=True)
        write_atomically(ko, (tmp / ko.name).read_bytes())
        write_atomically(out / ".sources", stamp_text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ko


def hash_bytes(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


# --- the guest -----------------------------------------------------------------------------------

INIT = """#!/bin/busybox sh
# vmfrag's guest: load the replay module, print its results, power off.
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
if /bin/busybox insmod /vmfrag_replay.ko path=/ops.bin; then
    /bin/busybox cat /proc/vmfrag_replay
else
    echo "vmfrag-init: insmod failed"
fi
/bin/busybox poweroff -f
"""
BUSYBOX = Path("/bin/busybox")


def make_initramfs(work, ko, ops_bytes):
    """A newc cpio with busybox, /init, the module and the ops file."""
    stage = work / "initramfs"
    for d in ("bin", "dev", "proc"):
        (stage / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, stage / "bin" / "busybox")
    (stage / "init").write_text(INIT)
    (stage / "init").chmod(0o755)
    shutil.copy2(ko, stage / "vmfrag_replay.ko")
    (stage / "ops.bin").write_bytes(ops_bytes)
    names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
    image = work / "initramfs.cpio"
    with open(image, "wb") as f:
        r = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "--owner=0:0"], cwd=stage,
                           input="\n".join(names).encode() + b"\n", stdout=f, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise KernelError(f"cpio failed: {r.stderr.decode(errors='replace').strip()}")
    return image


def qemu_command(kernel, initrd, smp):
    return ["qemu-system-x86_64", "-accel", "tcg", "-smp", str(smp), "-m", GUEST_MEMORY, "-nographic",
            "-no-reboot", "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd),
            "-append", "console=ttyS0 loglevel=4 panic=-1 rdinit=/init"]


def boot(kernel, ko, trace, smp, timeout, qemu=None):
    """Boots the kernel with the trace's ops, returns (console text, seconds, qemu's exit code).
    QEMU is always stopped before this returns (timeout, Ctrl-C or any error)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".run.", dir=cache_dir()))
    proc = None
    try:
        initrd = make_initramfs(work, ko, encode_ops(trace))
        console = work / "console.txt"
        cmd = (qemu or qemu_command)(kernel, initrd, smp)
        t0 = time.monotonic()
        with open(console, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise KernelError(f"the guest did not power off within {timeout} s; its console ends with:\n"
                                  + _tail(console.read_text(errors="replace"))) from None
        return console.read_bytes().decode("utf-8", "replace"), time.monotonic() - t0, rc
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def guest_timeout(trace):
    return 120 + len(trace.ops) // 200  # TCG: 5-8 s to boot, well under 1 ms per op


def guest_run(kernel, ko, trace, smp, qemu=None):
    """Boots the guest and reads the module's answers: (KernelRun, boot seconds). Raises
    KernelError when QEMU fails, the module does not load or its output is missing or short."""
    text, boot_s, rc = boot(kernel, ko, trace, smp, guest_timeout(trace), qemu)
    if rc != 0:
        raise KernelError(f"qemu-system-x86_64 exited with {rc}; the console ends with:\n" + _tail(text))
    return parse_console(text, trace), boot_s


@dataclass
class ReadyKernel:
    """A series's kernel, downloaded and unpacked, with the module built for it: what every boot
    of a batch of confirmations shares."""
    kernel: Kernel
    ko: Path
    seconds: dict  # fetch, module_build


def ready_kernel(series, log=print):
    t0 = time.monotonic()
    kernel = fetch_kernel(series, log)
    t1 = time.monotonic()
    ko = build_module(kernel, log)
    return ReadyKernel(kernel, ko, {"fetch": round(t1 - t0, 3), "module_build": round(time.monotonic() - t1, 3)})


def replay_on(ready, trace, smp):
    """Boots the ready kernel with the trace: the replay JSON of the trace on it, and the kernel's
    outcome of each op (for `compare`)."""
    kernel = ready.kernel
    run, boot_s = guest_run(kernel, ready.ko, trace, smp)
    meta = {"series": kernel.series, "package_version": kernel.version, "abi": kernel.abi, "smp": smp,
            "memory": GUEST_MEMORY, "packages": {p: d.name for p, d in kernel.debs.items()},
            "seconds": dict(ready.seconds, boot=round(boot_s, 3))}
    window_lazy = []
    result = kernel_result(trace, run, meta, window_lazy=window_lazy)
    return result, kernel_steps(trace, run, result, window_lazy)


def run_kernel(trace, series, smp, log=print):
    """fetch + build + boot + parse: the replay JSON of the trace on Linux `series`, and the
    kernel's outcome of each op (for `compare`)."""
    return replay_on(ready_kernel(series, log), trace, smp)


# --- comparison with vmfrag ------------------------------------------------------------------------

def vmfrag_replay(trace_path):
    """The C++ replay of the trace: (exit code, its JSON or None, its timeline, its stderr)."""
    from .cli import cli_binary
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


# --- confirmation records (vmfrag-confirmation) ----------------------------------------------------

CONFIRMATION = "vmfrag-confirmation"
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
    from .results import provenance
    k = result["kernel"] if result else {}
    record = {"format": CONFIRMATION, "version": 1, "finding": finding, "trace": trace_name,
              "trace_sha256": hash_bytes(trace_bytes),
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
        if isinstance(doc, dict) and doc.get("format") == "vmfrag-finding" and isinstance(doc.get("trace"), str):
            found.append((p, doc))
    return found


def _settled(path, trace_bytes):
    """The existing record at `path` when it is a result for this very trace, else None."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (isinstance(doc, dict) and doc.get("format") == CONFIRMATION and doc.get("status") in SETTLED
            and doc.get("trace_sha256") == hash_bytes(trace_bytes)):
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
        ready = ready_for()
        result, ksteps = replay_on(ready, trace, smp)
    except KernelError as e:
        return record(status="error", reason=str(e), ready=ready)
    return record(ready=ready, result=result, verdict=verdict(trace, cxx, steps, ksteps, result))


def confirm_findings(findings_dir, series, log=print, smp=1):
    """Confirms every finding in `findings_dir` (a `vmfrag-finding` sidecar + its trace) on each
    kernel series ("6.1", "6.12"): replays its trace in vmfrag and in the kernel and writes
    `<id>.linux-<series>.json` (vmfrag-confirmation v1) atomically beside the sidecar. Resumable:
    a finding that already has an identical / differs / not-confirmable record for the same trace
    bytes is skipped; an `error` record is retried. The kernel is fetched and its module built
    once per series, and only when some finding needs it. Returns every finding's record (those
    found and those written), by series then finding. Needs the release build (`vmfrag replay`)."""
    from .cli import cli_binary
    from .results.writing import write_result
    unknown = [s for s in series if s not in SERIES]
    if unknown:
        raise ValueError(f"unknown kernel series {', '.join(unknown)} (one of {', '.join(sorted(SERIES))})")
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
                old = _settled(out, (sidecar.parent / doc["trace"]).read_bytes()) if out.exists() else None
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


# --- the commands ------------------------------------------------------------------------------

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
    from .cli import prepare
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
