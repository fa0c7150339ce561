"""The guest: an initramfs with busybox, /init, the module and the trace's ops, booted under
`qemu-system-x86_64 -accel tcg`; QEMU is always stopped before `boot` returns."""
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import packages
from .console import parse_console, tail_of
from .errors import KernelError
from .trace import encode_ops

GUEST_MEMORY = "512M"

INIT = """#!/bin/busybox sh
# vmfrag's guest: load the replay module, print its results, power off.
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
if /bin/busybox insmod /vmfrag_replay.ko path=/ops.bin; then
    /bin/busybox cat /proc/vmfrag_replay
else
    echo "vmfrag-init: insmod failed"
fi
/bin/busybox poweroff -f
"""
BUSYBOX = Path("/bin/busybox")


def make_initramfs(work, ko, ops_bytes):
    """A newc cpio with busybox, /init, the module and the ops file."""
    stage = work / "initramfs"
    for d in ("bin", "dev", "proc"):
        (stage / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, stage / "bin" / "busybox")
    (stage / "init").write_text(INIT)
    (stage / "init").chmod(0o755)
    shutil.copy2(ko, stage / "vmfrag_replay.ko")
    (stage / "ops.bin").write_bytes(ops_bytes)
    names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
    image = work / "initramfs.cpio"
    with open(image, "wb") as f:
        r = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "--owner=0:0"], cwd=stage,
                           input="\n".join(names).encode() + b"\n", stdout=f, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise KernelError(f"cpio failed: {r.stderr.decode(errors='replace').strip()}")
    return image


def qemu_command(kernel, initrd, smp):
    return ["qemu-system-x86_64", "-accel", "tcg", "-smp", str(smp), "-m", GUEST_MEMORY, "-nographic",
            "-no-reboot", "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd),
            "-append", "console=ttyS0 loglevel=4 panic=-1 rdinit=/init"]


def boot(kernel, ko, trace, smp, timeout, qemu=None):
    """Boots the kernel with the trace's ops, returns (console text, seconds, qemu's exit code).
    QEMU is always stopped before this returns (timeout, Ctrl-C or any error)."""
    packages.cache_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".run.", dir=packages.cache_dir()))
    proc = None
    try:
        initrd = make_initramfs(work, ko, encode_ops(trace))
        console = work / "console.txt"
        cmd = (qemu or qemu_command)(kernel, initrd, smp)
        t0 = time.monotonic()
        with open(console, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise KernelError(f"the guest did not power off within {timeout} s; its console ends with:\n"
                                  + tail_of(console.read_text(errors="replace"))) from None
        return console.read_bytes().decode("utf-8", "replace"), time.monotonic() - t0, rc
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def guest_timeout(trace):
    return 120 + len(trace.ops) // 200  # TCG: 5-8 s to boot, well under 1 ms per op


def guest_run(kernel, ko, trace, smp, qemu=None):
    """Boots the guest and reads the module's answers: (KernelRun, boot seconds). Raises
    KernelError when QEMU fails, the module does not load or its output is missing or short."""
    text, boot_s, rc = boot(kernel, ko, trace, smp, guest_timeout(trace), qemu)
    if rc != 0:
        raise KernelError(f"qemu-system-x86_64 exited with {rc}; the console ends with:\n" + tail_of(text))
    return parse_console(text, trace), boot_s

