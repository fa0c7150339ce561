"""`scripts/vmfrag report RESULTS_DIR [--merge DIR...] [--history DB] [-o FILE]`: one self-contained
HTML file (CSS and SVG inline, no script, no network request of any kind) from a results directory,
and the same figures as a terminal summary.

The numbers come from the results layer (results.compute); this module only turns them into
charts (svg_charts) and HTML (Jinja2, autoescape on, templates in reports/templates/). Strings from
result files reach the page only through autoescaped template expressions or svg_charts' own
escaping; `Markup` is applied to svg_charts output only.
"""
import json
import sqlite3
import sys
from pathlib import Path

from . import history, paths, svg_charts
from . import results as results_layer
from .results import summary, writing

TEMPLATES = paths.REPO / "reports" / "templates"
EXIT_OK, EXIT_USAGE = 0, 2


def _environment():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(json=lambda v: json.dumps(v, sort_keys=True), plural=lambda n, word: f"{n} {word}{'' if n == 1 else 's'}",
                       bytes=summary.bytes_text, ratio=summary.ratio_text, count=summary.count_text,
                       duration=summary.duration_text, kinds=summary.kinds_text)
    return env


def _svg(text):
    from markupsafe import Markup
    return Markup(text)


def workload_charts(row):
    """The five stress charts of one workload run, failures marked on the op axis."""
    tl = row["timeline"]
    s = tl["series"]
    markers = [{"x": f["op"], "label": (f"op {f['op']}: {', '.join(f['kinds'])}" if f["count"] == 1 else
                                        f"{f['count']} failed ops from op {f['op']}: {', '.join(f['kinds'])}")}
               for f in tl["failures"]]
    x_range = (tl["first_op"], tl["last_op"]) if tl["ops"] else None
    name = f"{row['workload']} seed {row['seed']}"
    mib = lambda pts: [(x, y / 2**20) for x, y in pts]  # noqa: E731
    return [
        _svg(svg_charts.line_chart(f"{name}: bytes over ops", "op index", "MiB",
                                   [{"name": "live bytes", "points": mib(s["live_bytes"])},
                                    {"name": "free bytes", "points": mib(s["free_bytes"])},
                                    {"name": "largest free extent", "points": mib(s["largest_free_bytes"]), "dashed": True}],
                                   markers=markers, x_range=x_range)),
        _svg(svg_charts.line_chart(f"{name}: free extents over ops", "op index", "free extents (count)",
                                   [{"name": "free extents", "points": s["free_extents"]}], markers=markers, x_range=x_range)),
        _svg(svg_charts.line_chart(f"{name}: external fragmentation over ops", "op index",
                                   "1 - largest free / free (ratio)",
                                   [{"name": "external fragmentation", "points": s["external_fragmentation"]}],
                                   markers=markers, x_range=x_range, y_range=(0, 1))),
    ]


def first_failure_map(row):
    ff = row["first_failure"]
    if not ff or not ff["segments"]:
        return None
    return _svg(svg_charts.address_map(
        f"{row['workload']} seed {row['seed']}: address space at the first failure (op {ff['op']}, {ff['kind']})",
        ff["segments"], ff["region_bytes"], request_bytes=ff["size"], largest_free_bytes=ff["largest_free_bytes"],
        request_label="failed request (size, guard not included)"))


def finding_charts(f):
    charts = {}
    if f["segments"] and f["region_bytes"]:
        charts["map"] = _svg(svg_charts.address_map(
            f"Address space at the failure: {f['kind']} of a {summary.bytes_text(f['request_size'])} request",
            f["segments"], f["region_bytes"], request_bytes=f["request_need"] or f["request_size"],
            largest_free_bytes=f["largest_free_bytes"]))
    phys = f["physical_map"]
    if phys:
        charts["physical"] = _svg(svg_charts.physical_map(
            "Physical memory at the failure: free pages by buddy order", phys["free_blocks_by_order"],
            failed_order=phys.get("failed_order"), page_bytes=phys.get("page_bytes", 4096)))
    return charts


def hunt_charts(h):
    lines = []
    if h["floor"] is not None:
        lines.append({"y": h["floor"], "label": f"theoretical floor {h['floor']:.3f}", "colour": "#000"})
    lines.append({"y": h["threshold"], "label": f"threshold {h['threshold']}", "colour": "#d62728"})
    charts = [_svg(svg_charts.strip_chart("Best severity per trial, per arm (lower = worse fragmentation found)",
                                          "best severity (peak live need / region)",
                                          [{"name": a["name"], "values": a["best_severities"]} for a in h["arms"]],
                                          hlines=lines))]
    series = []
    for a in h["arms"]:
        pts = [(0, 0.0)] + [(p["seconds"], p["share"]) for p in a["success_curve"]] + [
            (h["seconds_per_trial"], a["success_curve"][-1]["share"] if a["success_curve"] else 0.0)]
        series.append({"name": f"{a['name']} ({a['censored']} censored)", "points": pts})
    charts.append(_svg(svg_charts.line_chart(
        f"Share of trials that reached severity <= {h['threshold']} over time", "seconds into the trial",
        "share of trials (censored trials never reach)", series, step=True, y_range=(0, 1),
        x_range=(0, h["seconds_per_trial"]))))
    return charts


def fuzz_chart(row):
    hist = row["history"]
    series = [{"name": "coverage features", "points": [(p["seconds"], p["features"]) for p in hist if p.get("features") is not None]},
              {"name": "corpus entries", "points": [(p["seconds"], p["corpus_size"]) for p in hist if p.get("corpus_size") is not None],
               "dashed": True}]
    series = [s for s in series if s["points"]]
    if not series:
        return None
    return _svg(svg_charts.line_chart(f"{row['target']}: coverage and corpus over time", "seconds", "count", series))


def trend_chart(row):
    pts = [(i, h["value"]) for i, h in enumerate(row["history"])] + [(len(row["history"]), row["value"])]
    lines = [] if row["baseline"] is None else [
        {"y": row["baseline"], "label": "baseline (median)", "colour": "#d62728" if row["regression"] else "#555"}]
    return _svg(svg_charts.line_chart(f"{row['name']} over the last {len(pts)} runs", "run (oldest to this one)",
                                      row["unit"], [{"name": "value", "points": pts}], hlines=lines,
                                      width=560, height=210, x_integer=True))


def build_view(tables):
    """The template's input: the computed tables plus the charts drawn from them."""
    view = dict(tables)
    view["finding_charts"] = [finding_charts(f) for f in tables["findings"]]
    view["workload_charts"] = [(row, workload_charts(row)) for row in tables["charted_workloads"]]
    view["failure_maps"] = [(row, m) for row in tables["workloads"] for m in [first_failure_map(row)] if m is not None]
    view["hunt_charts"] = hunt_charts(tables["hunt"]) if tables["hunt"] else []
    view["fuzz_charts"] = [fuzz_chart(r) for r in tables["fuzz"]]
    bench = tables["bench"]
    view["ratio_chart"] = _svg(svg_charts.ratio_bars(
        "Ratios the bench suite defines, each beside its goal", "ratio (numerator time / denominator time)",
        [{"name": r["name"], "value": r["ratio"], "goal": r["goal_max"]} for r in bench["ratios"]])) \
        if bench and bench["ratios"] else None
    trend = tables.get("trend") or []
    view["trend"] = trend
    view["trend_charts"] = [trend_chart(t) if t["history"] else None for t in trend]
    return view


def render(tables):
    return _environment().get_template("report.html.j2").render(**build_view(tables))


def make_report(results_dir, merge=(), history_path=None, output=None):
    """Loads, computes, records in the history (when a path is given) and writes the report.
    Returns (tables, output path)."""
    results_dir = Path(results_dir)
    roots = [results_dir, *merge]
    if merge:
        results_dir.mkdir(parents=True, exist_ok=True)
    loaded = results_layer.load(roots)
    tables = results_layer.compute(loaded)
    tables["trend"] = []
    tables["history_path"] = None
    tables["history_error"] = None
    if history_path is not None:
        try:
            conn = history.open_history(history_path)
            try:
                key = history.run_key(loaded, tables["header"])
                history.record(conn, key, tables["header"], tables["key_figures"])
                tables["trend"] = history.trend(conn, key, tables["header"], tables["key_figures"])
                tables["history_path"] = str(history_path)
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as e:
            # The report is still worth having without a trend; the page and the summary say why.
            tables["history_error"] = f"{history_path}: {e}"
    out = Path(output) if output else results_dir / "index.html"
    writing.write_atomically(out, render(tables))
    return tables, out


def add_report_parser(sub):
    s = sub.add_parser("report", help="write RESULTS_DIR/index.html (self-contained) and print a summary",
                       description="Writes one self-contained HTML report (no network requests) from a "
                       "results directory, records the run's key figures in the history database and "
                       "prints the same figures as a terminal summary, then the report's path.")
    s.add_argument("results_dir", metavar="RESULTS_DIR", help="the results directory (index.html goes here)")
    s.add_argument("--merge", nargs="+", default=[], metavar="DIR",
                   help="shard directories of the same run to combine into this report")
    s.add_argument("--history", default=str(history.DEFAULT_PATH), metavar="DB",
                   help=f"history database (default {history.DEFAULT_PATH.relative_to(paths.REPO)}; created on first use)")
    s.add_argument("--no-history", action="store_true", help="neither record this run nor show a trend")
    s.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of RESULTS_DIR/index.html")
    s.set_defaults(func=cmd_report)
    return s


def cmd_report(args):
    results_dir = Path(args.results_dir)
    if not results_dir.is_dir() and not args.merge:
        print(f"vmfrag: error: {results_dir}: no such results directory", file=sys.stderr)
        return EXIT_USAGE
    for d in args.merge:
        if not Path(d).is_dir():
            print(f"vmfrag: error: --merge {d}: no such directory", file=sys.stderr)
            return EXIT_USAGE
    try:
        tables, out = make_report(results_dir, args.merge, None if args.no_history else args.history, args.output)
    except history.HistoryError as e:
        print(f"vmfrag: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(summary.summary_text(tables))
    if tables["history_error"]:
        print(f"vmfrag report: warning: no trend: the history database is unusable: {tables['history_error']}",
              file=sys.stderr)
    print(f"vmfrag report: {out}")
    return EXIT_OK


def main(argv=None):
    """Standalone entry point (`python3 -m vmfrag_jobs.report RESULTS_DIR ...`) until cli.py wires
    `report` in through add_report_parser."""
    import argparse
    p = argparse.ArgumentParser(prog="vmfrag")
    add_report_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["report", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
