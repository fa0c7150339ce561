"""A timeline (one JSON object per op, possibly millions) thinned while it streams in, so loading
never holds more than a few hundred buckets.

`Envelope` keeps consecutive ops in buckets of `width` ops; each bucket remembers, per metric, its
minimum and its maximum (with their ops), and how many ops failed in it (the first failing op and
the failure kinds). When there are more than 2·points buckets, neighbours merge pairwise and the
width doubles: at the end there are between `points` and 2·points buckets, and every peak and dip
of every metric is still there (a bucket's extremes are the extremes of what it merged).
"""

METRICS = ("live_bytes", "free_bytes", "largest_free_bytes", "free_extents", "external_fragmentation")
DEFAULT_POINTS = 150


class Envelope:
    def __init__(self, points=DEFAULT_POINTS):
        self.points = points
        self.width = 1
        self.buckets = []   # [first_op, count, {metric: (min_op, min, max_op, max)}, failures, first_failed_op, kinds]
        self.ops = 0
        self.first_op = None
        self.last_op = None
        self.failed_ops = 0

    def add(self, rec):
        op = rec["op"]
        if self.first_op is None:
            self.first_op = op
        self.last_op = op
        self.ops += 1
        failed = rec["result"] != "ok"
        self.failed_ops += failed
        if not self.buckets or self.buckets[-1][1] >= self.width:
            self.buckets.append([op, 0, {m: (op, rec[m], op, rec[m]) for m in METRICS}, 0, None, set()])
            if len(self.buckets) > 2 * self.points:
                self._halve()
        b = self.buckets[-1]
        b[1] += 1
        ext = b[2]
        for m in METRICS:
            v = rec[m]
            lo_op, lo, hi_op, hi = ext[m]
            if v < lo:
                ext[m] = (op, v, hi_op, hi)
            elif v > hi:
                ext[m] = (lo_op, lo, op, v)
        if failed:
            b[3] += 1
            if b[4] is None:
                b[4] = op
            b[5].add(rec["result"])

    def _halve(self):
        last = self.buckets.pop()  # just opened: merged back after
        merged = []
        for i in range(0, len(self.buckets), 2):
            pair = self.buckets[i:i + 2]
            if len(pair) == 1:
                merged.append(pair[0])
                continue
            a, b = pair
            ext = {}
            for m in METRICS:
                alo_op, alo, ahi_op, ahi = a[2][m]
                blo_op, blo, bhi_op, bhi = b[2][m]
                lo = (alo_op, alo) if alo <= blo else (blo_op, blo)
                hi = (ahi_op, ahi) if ahi >= bhi else (bhi_op, bhi)
                ext[m] = (*lo, *hi)
            first_failed = a[4] if a[4] is not None else b[4]
            merged.append([a[0], a[1] + b[1], ext, a[3] + b[3], first_failed, a[5] | b[5]])
        self.width *= 2
        self.buckets = merged + [last]

    def series(self):
        """{metric: [(op, value), ...]} in op order, a bucket's min and max each once."""
        out = {m: [] for m in METRICS}
        for b in self.buckets:
            for m in METRICS:
                lo_op, lo, hi_op, hi = b[2][m]
                out[m].extend(sorted({(lo_op, lo), (hi_op, hi)}))
        return out

    def failure_marks(self):
        """One mark per bucket with failures: its first failed op, how many failed, which kinds."""
        return [{"op": b[4], "count": b[3], "kinds": sorted(b[5])} for b in self.buckets if b[3]]
