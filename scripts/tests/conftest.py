"""Shared fixtures: the repository root and the release build the test job made."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def release_build():
    bdir = Path(os.environ.get("VMFRAG_BUILD_DIR", REPO / "build" / "release"))
    if not (bdir / "build.ninja").exists():
        pytest.fail(f"no release build at {bdir}: run through `scripts/vmfrag test`")
    return bdir
