"""The window, rebuilt from the kernel's answers. The kernel says only "placed at X" or "failed":
everything else in the replay JSON (failure kinds, free bytes, maps, final statistics) comes from
`WindowModel`, the window's areas at the kernel's own placements, with a purge wherever the
kernel's lazy counter dropped. A failure where the window model still holds an aligned fit is the
kernel's own kind: `alignment-search-miss` (alignment above a page: the kernel looks for
size + align - 1 bytes), `no-physical-memory` (fewer pages available than the area needs) or
`unexplained`."""
import bisect

from .errors import KernelError
from .trace import PAGE, area_need

MAPS = 16  # failures that carry a map, as `replay --maps` defaults to


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

