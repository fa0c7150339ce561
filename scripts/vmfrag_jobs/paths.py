"""Where things live. Every path the jobs use is derived from the repository root."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_ROOT = REPO / "build"
RESULTS = REPO / "results"


def build_dir(flavour: str) -> Path:
    return BUILD_ROOT / flavour
