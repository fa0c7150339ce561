"""The results layer: loads and validates every result file a job wrote, and computes the tables
that the HTML report (report.py) and the terminal summary (summary.py) both show, so the two always
show the same numbers.

    results = load([results_dir, *shard_dirs])   # loading.ResultsDir: files + problems
    tables = compute(results)                    # tables.compute: plain dicts, no rendering

Formats and schemas: schemas.py and reports/README.md. For producers: provenance.py (the
provenance object) and writing.py (validated, atomic result files; run.json step by step).
"""
__all__ = ["ResultsDir", "ResultFile", "load", "load_dir", "compute", "summary_text", "RunManifest", "write_result",
           "InvalidResult"]

from .loading import ResultsDir, ResultFile, load, load_dir  # noqa: F401
from .tables import compute  # noqa: F401
from .summary import summary_text  # noqa: F401
from .writing import RunManifest, write_result, InvalidResult  # noqa: F401
