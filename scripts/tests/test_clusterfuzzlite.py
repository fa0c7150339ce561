""".clusterfuzzlite/build.sh run locally the way ClusterFuzzLite runs it: CC, CXX, CFLAGS, CXXFLAGS,
LIB_FUZZING_ENGINE, SRC, OUT and WORK set, then what lands in $OUT is checked: each target runs,
its seed corpus zip holds the seeds and regressions, its .dict and .options are there. The build
directory (WORK) persists under build/clusterfuzzlite, so only the first run compiles everything."""
import os
import shutil
import subprocess
import zipfile

import pytest

from vmfrag_jobs import paths

TARGETS = {"fuzz_trace_parser": "trace_parser", "fuzz_frag_hunt": "frag_hunt", "fuzz_phys_hunt": "phys_hunt",
           "fuzz_ops": "ops"}
SANITIZE = "-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address -fsanitize-address-use-after-scope " \
           "-fsanitize=fuzzer-no-link"


def test_build_sh_fills_out(tmp_path):
    if shutil.which("clang++") is None:
        pytest.skip("needs clang")
    out = tmp_path / "out"
    out.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "vmfrag").symlink_to(paths.REPO)
    work = paths.BUILD_ROOT / "clusterfuzzlite"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CC="clang", CXX="clang++", CFLAGS=SANITIZE, CXXFLAGS=SANITIZE,
               LIB_FUZZING_ENGINE="-fsanitize=fuzzer", SRC=str(src), OUT=str(out), WORK=str(work))
    r = subprocess.run(["bash", str(paths.REPO / ".clusterfuzzlite" / "build.sh")], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for target, name in TARGETS.items():
        binary = out / target
        assert binary.exists() and os.access(binary, os.X_OK)
        with zipfile.ZipFile(out / f"{target}_seed_corpus.zip") as z:
            names = z.namelist()
        for label, d in (("seed", paths.REPO / "corpus" / name), ("regression", paths.REPO / "corpus" / "regressions" / name)):
            files = sorted(p.name for p in d.iterdir())
            assert files, d
            assert sorted(n for n in names if n.startswith(label + "-")) == [f"{label}-{f}" for f in files]
        assert (out / f"{target}.dict").read_text() == (paths.REPO / "corpus" / f"{name}.dict").read_text()
        assert f"dict = {target}.dict" in (out / f"{target}.options").read_text()
        run = subprocess.run([str(binary), "-runs=200", "-seed=1"], capture_output=True, text=True,
                             env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
        assert run.returncode == 0, run.stderr[-2000:]
        assert "Done 200 runs" in run.stderr
