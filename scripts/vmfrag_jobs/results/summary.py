"""The terminal summary: the same tables as the HTML report, as plain text (one screen), formatted
with the same number formatting (`fmt`), so both show the same figures."""


def kernel_verdict_text(c):
    """A kernel confirmation in a few words, as the terminal summary prints it under its finding."""
    if c["status"] == "identical":
        return f"confirmed (identical over {count_text(c['ops_compared'])} ops)"
    if c["status"] == "differs":
        d = c["difference"] or {}
        return f"differs at op {d.get('op')} ({d.get('kind')})"
    return f"{c['status']}: {c['reason']}"


def bytes_text(n):
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def ratio_text(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def count_text(n):
    return "-" if n is None else f"{n:,}"


def duration_text(seconds):
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def kinds_text(by_kind):
    return ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())) or "none"


def summary_text(tables):
    h = tables["header"]
    out = [f"vmfrag {h['job'] or 'run'}: {h['verdict']['text'].upper() if h['verdict']['status'] == 'bugs' else h['verdict']['text']}"
           f" | commit {(h['commit'] or 'unknown')[:12]} | {h['flavour'] or 'flavour unknown'}"
           f" | {duration_text(h['duration_seconds'])}"]
    for p in tables["problems"]:
        out.append(f"  missing/damaged: {p}")
    out.append(f"bugs: {len(tables['bugs'])}")
    for b in tables["bugs"]:
        out.append(f"  [{b['kind']}] {b['title']} (x{b['count']})")
        if b["command"]:
            out.append(f"    reproduce: {b['command']}")
    out.append(f"findings: {len(tables['findings'])}")
    for f in tables["findings"]:
        dist = f" ({ratio_text(f['distance_to_floor'])} above floor {ratio_text(f['floor'])})" if f["distance_to_floor"] is not None else ""
        out.append(f"  {f['kind']} request {bytes_text(f['request_size'])} severity {ratio_text(f['severity'])}{dist}"
                   f" ops {count_text(f['ops_before'])} -> {count_text(f['ops_after'])}")
        for c in f.get("confirmations") or []:
            out.append(f"    Linux {c['release'] or c['series']}: {kernel_verdict_text(c)}")
    for f in (tables.get("reliability") or {}).get("figures", []):
        out.append(f"reliability {f['name']} ({f['flavour']}): {count_text(f['passed'])}/{count_text(f['tried'])} {f['status']}")
    if tables["workloads"]:
        out.append(f"workloads: {len(tables['workloads'])} runs")
        for w in tables["workloads"]:
            out.append(f"  {w['workload']:<28} seed {w['seed']!s:<3} ops {count_text(w['ops']):>9}  "
                       f"failures: {kinds_text(w['failures_by_kind'])}  peak live {bytes_text(w['peak_live_bytes'])}  "
                       f"ext. frag {ratio_text(w['external_fragmentation'])}  {w['status']}")
    for z in tables["fuzz"]:
        out.append(f"fuzz {z['target']}: {count_text(z['execs'])} execs, {z['execs_per_second']:.0f}/s, corpus "
                   f"{count_text(z['corpus_size'])}, findings {z['findings']}, bugs {z['bugs']}")
    if tables["hunt"]:
        for a in tables["hunt"]["arms"]:
            out.append(f"hunt {a['name']}: best {ratio_text(a['best'])}, reached <= {tables['hunt']['threshold']} in "
                       f"{a['successes']}/{a['trials']} (95% CI {ratio_text(a['ci_low'], 2)}-{ratio_text(a['ci_high'], 2)})")
    if tables["bench"]:
        for r in tables["bench"]["ratios"]:
            goal = f" goal <= {r['goal_max']}" if r["goal_max"] is not None else ""
            state = "" if r["met"] is None else (" met" if r["met"] else " MISSED")
            out.append(f"bench ratio {r['name']}: {ratio_text(r['ratio'], 2)}{goal}{state}")
        for name, why in sorted(tables["bench"]["unsupported"].items()):
            out.append(f"bench counter {name}: {why}")
    for t in tables.get("trend") or []:
        if t["regression"]:
            out.append(f"REGRESSION {t['name']}: {t['value']} {t['unit']} (previous {t['previous']})")
    return "\n".join(out)
