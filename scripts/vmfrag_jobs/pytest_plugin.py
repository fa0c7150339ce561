"""pytest fixtures shared by every pytest suite (scripts/tests, harness/tests), loaded by the test
job with `-p vmfrag_jobs.pytest_plugin`: the repository root, the release build and its CLI binary."""
import os
from pathlib import Path

import pytest

from . import paths


@pytest.fixture(scope="session")
def repo():
    return paths.REPO


@pytest.fixture(scope="session")
def release_build():
    bdir = Path(os.environ.get("VMFRAG_BUILD_DIR", paths.build_dir("release")))
    if not (bdir / "build.ninja").exists():
        pytest.fail(f"no release build at {bdir}: run the tests through `scripts/vmfrag test`")
    return bdir


@pytest.fixture(scope="session")
def cli(release_build):
    """The C++ `vmfrag` binary of the release build."""
    path = release_build / "harness" / "cli" / "vmfrag"
    assert path.exists(), path
    return path
