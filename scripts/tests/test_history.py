"""Run history (scripts/vmfrag_jobs/history.py): the SQLite schema and its migrations (a version-1
database with data is migrated to the current version without losing a row; a newer database is
refused), recording runs, trends against earlier runs of the same job kind, regression flags, and
the report's Trend section built from it."""
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from vmfrag_jobs import history, report

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def header(job="ci", started="2026-11-30T01:00:00+00:00"):
    return {"job": job, "commit": "abc", "started": started, "finished": started, "verdict": {"status": "clean"},
            "results_dirs": ["/r"]}


def fig(name, value, better="lower", tolerance=0.1, unit="ns"):
    return {"name": name, "value": value, "unit": unit, "better": better, "tolerance": tolerance}


def test_a_new_database_gets_the_current_schema(tmp_path):
    conn = history.open_history(tmp_path / "sub" / "h.sqlite")
    assert history.schema_version(conn) == history.SCHEMA_VERSION == 2
    cols = [r[1] for r in conn.execute("PRAGMA table_info(figures)")]
    assert cols == ["run_id", "name", "value", "unit", "better"]


def test_migrating_a_version_1_database_keeps_its_runs(tmp_path):
    path = tmp_path / "h.sqlite"
    conn = history.open_history(path, target=1)
    assert history.schema_version(conn) == 1
    conn.execute("INSERT INTO runs (run_key, job, started, verdict, results_dir) VALUES ('k1', 'ci', '2026-01-01', 'clean', '/r')")
    conn.execute("INSERT INTO figures (run_id, name, value) VALUES (1, 'bugs', 0)")
    conn.commit()
    conn.close()
    conn = history.open_history(path)
    assert history.schema_version(conn) == 2
    assert conn.execute("SELECT name, value, unit, better FROM figures").fetchall() == [("bugs", 0.0, "", "lower")]
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'runs_by_job'").fetchone()


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "h.sqlite"
    history.open_history(path, target=1).close()
    monkeypatch.setattr(history, "MIGRATIONS", history.MIGRATIONS[:1] + [
        "ALTER TABLE figures ADD COLUMN unit TEXT; ALTER TABLE no_such_table ADD COLUMN x TEXT;"])
    with pytest.raises(history.HistoryError, match="from version 1 failed"):
        history.open_history(path)
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "unit" not in [r[1] for r in conn.execute("PRAGMA table_info(figures)")]


def test_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "h.sqlite"
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(history.HistoryError, match="newer than this code"):
        history.open_history(path)


def test_regressions_are_flagged_against_the_median_of_earlier_runs(tmp_path):
    conn = history.open_history(tmp_path / "h.sqlite")
    for i, t in enumerate((100, 104, 98, 300, 101)):  # one outlier; the median ignores it
        history.record(conn, f"run{i}", header(started=f"2026-11-2{i}T00:00:00+00:00"),
                       [fig("bench.x.real_time", t), fig("bugs", 0, tolerance=0.0, unit="count")])
    history.record(conn, "other-job", header(job="nightly", started="2026-11-29T00:00:00+00:00"),
                   [fig("bench.x.real_time", 1.0)])
    now = header(started="2026-11-30T00:00:00+00:00")
    figures = [fig("bench.x.real_time", 112), fig("bugs", 1, tolerance=0.0, unit="count"),
               fig("fuzz.t.execs_per_second", 10, better="higher")]
    history.record(conn, "now", now, figures)
    rows = {r["name"]: r for r in history.trend(conn, "now", now, figures)}
    x = rows["bench.x.real_time"]
    assert [h["value"] for h in x["history"]] == [100, 104, 98, 300, 101]  # not the nightly run
    assert x["baseline"] == 101 and x["previous"] == 101 and x["regression"]  # 112 > 101 * 1.1
    assert rows["bugs"]["regression"]
    assert rows["fuzz.t.execs_per_second"]["history"] == [] and not rows["fuzz.t.execs_per_second"]["regression"]
    assert not history.is_regression(110, 101, "lower", 0.1)
    assert history.is_regression(8, 10, "higher", 0.1) and not history.is_regression(9.5, 10, "higher", 0.1)
    assert not history.is_regression(5, 1, "neutral", 0.0)


def test_reporting_the_same_run_again_replaces_it(tmp_path):
    conn = history.open_history(tmp_path / "h.sqlite")
    history.record(conn, "k", header(), [fig("bugs", 1)])
    history.record(conn, "k", header(), [fig("bugs", 0)])
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    assert conn.execute("SELECT value FROM figures").fetchall() == [(0.0,)]


def test_the_report_shows_the_trend_of_earlier_runs(tmp_path):
    db = tmp_path / "h.sqlite"
    older = tmp_path / "older"
    shutil.copytree(FIXTURES / "ci-clean", older)
    # An earlier ci run that had no failures in its workloads.
    for p in (older / "workloads").glob("*.replay.json"):
        doc = json.loads(p.read_text())
        doc["failures_by_kind"] = {}
        p.write_text(json.dumps(doc))
    run = json.loads((older / "run.json").read_text())
    run.update(run_id="older", started="2026-11-29T02:00:00+00:00", finished="2026-11-29T02:04:00+00:00")
    (older / "run.json").write_text(json.dumps(run))
    report.make_report(older, history_path=db)
    now = tmp_path / "now"
    shutil.copytree(FIXTURES / "ci-clean", now)
    tables, out = report.make_report(now, history_path=db)
    trend = {t["name"]: t for t in tables["trend"]}
    assert trend["workload_failures"]["previous"] == 0 and trend["workload_failures"]["regression"]
    assert not trend["bugs"]["regression"]
    html = out.read_text()
    assert "REGRESSION" in html and "workload_failures over the last 2 runs" in html


def test_an_unusable_history_database_costs_the_trend_not_the_report(tmp_path):
    d = tmp_path / "run"
    shutil.copytree(FIXTURES / "ci-clean", d)
    not_a_db = tmp_path / "h.sqlite"
    not_a_db.write_text("this is not an SQLite database, it is a text file of some length " * 20)
    tables, out = report.make_report(d, history_path=not_a_db)
    assert tables["trend"] == [] and "file is not a database" in tables["history_error"]
    assert "No trend: the history database could not be used" in out.read_text()
