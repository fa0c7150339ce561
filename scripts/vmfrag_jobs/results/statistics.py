"""The statistics of a fuzzing evaluation (Klees et al. 2018; FuzzBench), in the standard library.

- `wilson_interval`: a success rate's 95 % confidence interval (Wilson score; sound at 0/10 and
  10/10, where the normal interval collapses to a point).
- `mann_whitney_u`: two-sided Mann–Whitney U test, normal approximation with tie correction and
  continuity correction (scipy.stats.mannwhitneyu(method="asymptotic") gives the same p).
- `vargha_delaney_a12`: the probability that a value drawn from `a` is *lower* than one drawn from
  `b`, ties counted half: with best severity, lower is the better hunt, so A12 > 0.5 favours `a`.
"""
import math

Z_95 = 1.959963984540054


def wilson_interval(successes, trials, z=Z_95):
    """(low, high) of the success probability; (None, None) without trials."""
    if trials == 0:
        return None, None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def _ranks(values):
    """Average ranks (1-based) of values, ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _normal_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2))


def mann_whitney_u(a, b):
    """(U of a, two-sided p). p is None when a sample is empty or every value is tied."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return None, None
    values = list(a) + list(b)
    ranks = _ranks(values)
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    n = n1 + n2
    tie_term = 0
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    for t in counts.values():
        tie_term += t ** 3 - t
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0
    if variance <= 0:
        return u1, None
    mean = n1 * n2 / 2
    z = (abs(u1 - mean) - 0.5) / math.sqrt(variance)
    return u1, min(1.0, 2 * _normal_sf(max(z, 0.0)))


def vargha_delaney_a12(a, b):
    """P(x < y) + 0.5 P(x == y) for x from a, y from b; None if either is empty."""
    if not a or not b:
        return None
    lower = sum(1.0 if x < y else 0.5 if x == y else 0.0 for x in a for y in b)
    return lower / (len(a) * len(b))


def median(values):
    s = sorted(values)
    if not s:
        return None
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
