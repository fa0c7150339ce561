"""Builds the replay module (kernel/) against a kernel's unpacked headers, once per source change."""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import paths
from ..results.writing import write_atomically
from .console import tail_of
from .errors import KernelError

MODULE_SOURCES = ("Kbuild", "vmfrag_replay.c")


def build_module(kernel, log=print):
    """Builds kernel/ against the unpacked headers into <tree>/module/, once per source change."""
    src = paths.REPO / "kernel"
    sources = {name: (src / name).read_bytes() for name in MODULE_SOURCES}
    stamp_text = json.dumps({n: hash_bytes(b) for n, b in sources.items()}, sort_keys=True)
    out = kernel.root / "module"
    ko = out / "vmfrag_replay.ko"
    if ko.exists() and (out / ".sources").exists() and (out / ".sources").read_text() == stamp_text:
        return ko
    # The headers' Makefile includes the common tree by its absolute /usr/src path: point it here.
    hdr_makefile = kernel.headers_dir / "Makefile"
    text = hdr_makefile.read_text()
    common = re.search(r"include (\S*/usr/src/(linux-headers-\S+-common)/Makefile)", text)
    if not common:
        raise KernelError(f"unexpected {hdr_makefile}: no include of the common headers")
    wanted = f"include {kernel.root}/usr/src/{common.group(2)}/Makefile\n"
    if text != wanted:
        write_atomically(hdr_makefile, wanted)
    # Built in a directory of its own, then the .ko and its stamp replace the old ones: runs that
    # build at the same time never see a half-written module.
    tmp = Path(tempfile.mkdtemp(prefix=".module.", dir=kernel.root))
    try:
        for name, data in sources.items():
            (tmp / name).write_bytes(data)
        log(f"vmfrag: building the module for {kernel.abi}")
        env = {k: v for k, v in os.environ.items()
               if k not in ("ARCH", "CROSS_COMPILE", "KBUILD_OUTPUT", "MAKEFLAGS")}
        r = subprocess.run(["make", "-s", "-C", str(kernel.headers_dir), f"M={tmp}", "modules"],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0 or not (tmp / ko.name).exists():
            raise KernelError(f"building the module for {kernel.abi} failed:\n{tail_of(r.stdout + r.stderr, 25)}")
        out.mkdir(exist_ok=True)
        write_atomically(ko, (tmp / ko.name).read_bytes())
        write_atomically(out / ".sources", stamp_text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ko


def hash_bytes(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()

