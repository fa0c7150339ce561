"""Run history: the key figures of every reported run, in SQLite (stdlib sqlite3), so a report can
set each figure against earlier runs of the same job kind and flag regressions.

Default database: results/history.sqlite, created on first use. The schema version is SQLite's
`PRAGMA user_version`; `MIGRATIONS[i]` takes a database from version i to i + 1, in one
transaction, and `open_history` applies whatever is missing. A database newer than this code is
refused, not modified.

A run is keyed by its run id (run.json `run_id`, else the results directory's path and start time):
reporting the same run again replaces its figures instead of adding a run.
"""
import sqlite3
from pathlib import Path

from . import paths, results as results_layer
from .results import statistics

DEFAULT_PATH = paths.RESULTS / "history.sqlite"
BASELINE_RUNS = 5      # a figure is compared with the median of up to this many earlier runs
TREND_RUNS = 20        # earlier runs shown in the trend

MIGRATIONS = [
    # 0 -> 1: runs and their figures.
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_key TEXT NOT NULL UNIQUE,
        job TEXT NOT NULL,
        commit_sha TEXT,
        started TEXT,
        finished TEXT,
        verdict TEXT NOT NULL,
        results_dir TEXT NOT NULL
    );
    CREATE TABLE figures (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    """,
    # 1 -> 2: each figure keeps its unit and which direction is better, so a trend can be read
    # (and regressions judged) without the code that produced it; an index for per-job lookups.
    """
    ALTER TABLE figures ADD COLUMN unit TEXT NOT NULL DEFAULT '';
    ALTER TABLE figures ADD COLUMN better TEXT NOT NULL DEFAULT 'lower';
    CREATE INDEX runs_by_job ON runs(job, started);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(RuntimeError):
    pass


def schema_version(conn):
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn, target=SCHEMA_VERSION):
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise HistoryError(f"history database has schema version {current}, newer than this code ({SCHEMA_VERSION})")
    for version in range(current, target):
        try:
            conn.executescript("BEGIN;" + MIGRATIONS[version] + f"PRAGMA user_version = {version + 1};COMMIT;")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise HistoryError(f"migrating the history database from version {version} failed: {e}") from e
    return schema_version(conn)


def open_history(path=DEFAULT_PATH, target=SCHEMA_VERSION):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        migrate(conn, target)
    except Exception:
        conn.close()
        raise
    return conn


def run_key(results, header):
    runs = results.of(results_layer.schemas.RUN)
    ids = sorted(str(r.data.get("run_id")) for r in runs if r.data.get("run_id"))
    if ids:
        return "+".join(ids)
    return f"{results.roots[0]}@{header.get('started')}"


def record(conn, key, header, figures):
    """Stores (or replaces) one run's figures."""
    with conn:
        conn.execute("DELETE FROM runs WHERE run_key = ?", (key,))
        cur = conn.execute(
            "INSERT INTO runs (run_key, job, commit_sha, started, finished, verdict, results_dir) VALUES (?,?,?,?,?,?,?)",
            (key, header.get("job") or "adhoc", header.get("commit"), header.get("started"), header.get("finished"),
             header["verdict"]["status"], ";".join(header.get("results_dirs") or [])))
        run_id = cur.lastrowid
        conn.executemany("INSERT INTO figures (run_id, name, value, unit, better) VALUES (?,?,?,?,?)",
                         [(run_id, f["name"], float(f["value"]), f["unit"], f["better"]) for f in figures])
    return run_id


def earlier_values(conn, job, key, name, limit=TREND_RUNS):
    """(started, commit, value) of the figure in earlier runs of this job kind, oldest first."""
    rows = conn.execute(
        """SELECT r.started, r.commit_sha, f.value FROM figures f JOIN runs r ON r.id = f.run_id
           WHERE r.job = ? AND r.run_key != ? AND f.name = ?
             AND (r.started IS NULL OR r.started <= COALESCE((SELECT started FROM runs WHERE run_key = ?), r.started))
           ORDER BY r.started DESC, r.id DESC LIMIT ?""",
        (job, key, name, key, limit)).fetchall()
    return list(reversed(rows))


def is_regression(value, baseline, better, tolerance):
    """Worse than the baseline by more than the relative tolerance, in the figure's bad direction."""
    if baseline is None or better not in ("lower", "higher"):
        return False
    if better == "lower":
        return value > baseline * (1 + tolerance) if baseline > 0 else value > baseline
    return value < baseline * (1 - tolerance) if baseline > 0 else False


def trend(conn, key, header, figures):
    """Each figure beside the earlier runs of the same job kind, with a regression flag."""
    rows = []
    for f in figures:
        earlier = earlier_values(conn, header.get("job") or "adhoc", key, f["name"])
        values = [v for _, _, v in earlier]
        baseline = statistics.median(values[-BASELINE_RUNS:]) if values else None
        rows.append({"name": f["name"], "value": f["value"], "unit": f["unit"], "better": f["better"],
                     "tolerance": f["tolerance"], "previous": values[-1] if values else None, "baseline": baseline,
                     "history": [{"started": s, "commit": c, "value": v} for s, c, v in earlier],
                     "regression": is_regression(f["value"], baseline, f["better"], f["tolerance"])})
    return rows
