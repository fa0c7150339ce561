"""Debian's kernel packages: the series's current image, headers and kbuild (`apt-cache`), fetched
with `apt-get download` into results/kernel-cache/debs/ (kept there: Debian drops superseded
kernels from the archive) and unpacked with `dpkg-deb` under results/kernel-cache/. Nothing is
installed on the host and nothing under /boot is touched."""
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..results.writing import write_atomically
from .errors import KernelError

SERIES = {"6.1": "linux-image-amd64", "6.12": "linux-image-6.12-amd64"}
DEFAULT_SERIES = "6.1"


def cache_dir():
    return paths.RESULTS / "kernel-cache"


@dataclass
class Kernel:
    series: str
    abi: str        # 6.1.0-57-amd64
    version: str    # 6.1.192-3 (the Debian package version)
    packages: list  # [image, headers, headers-common, kbuild] package names
    debs: dict = field(default_factory=dict)  # package -> file in the cache
    root: Path = None  # unpacked tree

    @property
    def headers_dir(self):
        return self.root / "usr" / "src" / f"linux-headers-{self.abi}"

    @property
    def vmlinuz(self):
        return self.root / "boot" / f"vmlinuz-{self.abi}"


def apt_show(*packages):
    """Each known package's candidate fields from one `apt-cache show` (a package apt does not
    know is left out)."""
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages], capture_output=True, text=True)
    found = {}
    for stanza in r.stdout.split("\n\n"):
        fields, key = {}, None
        for ln in stanza.splitlines():
            if ln[:1] in (" ", "\t") and key:
                fields[key] += " " + ln.strip()
            elif ":" in ln:
                key, value = ln.split(":", 1)
                fields[key] = value.strip()
        if fields.get("Package") in packages:
            found.setdefault(fields["Package"], fields)
    return found


def depends(fields):
    """Package names in Depends (each alternative group's names, versions dropped)."""
    return [alt.strip().split()[0] for group in fields.get("Depends", "").split(",")
            for alt in group.split("|") if alt.strip()]


def resolve_kernel(series):
    """The current kernel of a series in the apt lists: metapackage -> image -> headers -> common
    and kbuild, all at the image's version. None when apt's lists do not have it."""
    meta = apt_show(SERIES[series]).get(SERIES[series])
    image = next((d for d in depends(meta) if d.startswith("linux-image-")), None) if meta else None
    if not image:
        return None
    abi = image[len("linux-image-"):]
    headers = f"linux-headers-{abi}"
    found = apt_show(image, headers)
    img, hdr = found.get(image), found.get(headers)
    if not img or not hdr or hdr.get("Version") != img.get("Version"):
        return None
    deps = depends(hdr)
    common = next((d for d in deps if d.startswith("linux-headers-") and d.endswith("-common")), None)
    kbuild = next((d for d in deps if d.startswith("linux-kbuild-")), None)
    if not common or not kbuild:
        return None
    return Kernel(series, abi, img["Version"], [image, headers, common, kbuild])


def manifest_path(series):
    return cache_dir() / f"linux-{series}.json"


def deb_name(package, version, deb):
    """Whether `deb` is apt-get download's file of that package version (name_version_arch.deb,
    an epoch's ':' written %3a)."""
    return deb.name.startswith(f"{package}_{version.replace(':', '%3a')}_") and deb.name.endswith(".deb")


def download(kernel, log):
    """Fetches the four packages into the cache with `apt-get download`, unless they are there."""
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    present = sorted(debs.glob("*.deb"))
    missing = [p for p in kernel.packages if not any(deb_name(p, kernel.version, d) for d in present)]
    if missing:
        log(f"vmfrag: downloading {', '.join(missing)} {kernel.version}")
        tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=debs))
        try:
            r = subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
                                *[f"{p}={kernel.version}" for p in missing]],
                               cwd=tmp, capture_output=True, text=True)
            if r.returncode != 0:
                why = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
                raise KernelError(f"cannot download Linux {kernel.abi} ({kernel.version}) from the archive: {why}. "
                                  "Debian drops superseded kernels; run 'apt-get update' for the current one, "
                                  f"or put the .deb files in {debs}")
            for deb in tmp.glob("*.deb"):  # whole files only: a killed download never lands in debs/
                os.replace(deb, debs / deb.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        present = sorted(debs.glob("*.deb"))
    kernel.debs = {}
    for p in kernel.packages:
        found = [d for d in present if deb_name(p, kernel.version, d)]
        if not found:
            raise KernelError(f"apt-get download did not deliver {p} {kernel.version}")
        kernel.debs[p] = found[0]


def unpack(kernel, log):
    """Unpacks into results/kernel-cache/<abi>_<version>/ (the image's /boot only: its modules are
    not needed), atomically: a half-unpacked tree never looks complete."""
    root = cache_dir() / f"{kernel.abi}_{kernel.version}"
    kernel.root = root
    if (root / ".complete").exists():
        return
    log(f"vmfrag: unpacking Linux {kernel.abi} into {root}")
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        for package, deb in kernel.debs.items():
            if package.startswith("linux-image-"):
                tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
                r = subprocess.run(["tar", "-x", "-C", str(partial), "--wildcards", "./boot/*"], stdin=tar.stdout,
                                   capture_output=True, text=True)
                tar.stdout.close()
                if tar.wait() != 0 or r.returncode != 0:
                    raise KernelError(f"cannot unpack {deb.name}: {r.stderr.strip()}")
            else:
                r = subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], capture_output=True, text=True)
                if r.returncode != 0:
                    raise KernelError(f"cannot unpack {deb.name}: {r.stderr.strip()}")
        (partial / ".complete").write_text(kernel.version + "\n")
        if root.exists() and not (root / ".complete").exists():
            shutil.rmtree(root)  # left by a run that died while replacing it
        try:
            os.rename(partial, root)
        except OSError:
            if not (root / ".complete").exists():  # another run unpacked it meanwhile: use theirs
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def fetch_kernel(series, log=print):
    """The kernel of `series`, downloaded and unpacked; the exact versions are recorded in
    results/kernel-cache/linux-<series>.json and reused when apt's lists no longer have them."""
    kernel = resolve_kernel(series)
    manifest = manifest_path(series)
    if kernel is None:
        if not manifest.exists():
            raise KernelError(f"apt's package lists have no Linux {series} ({SERIES[series]}): run 'apt-get update'")
        m = json.loads(manifest.read_text())
        kernel = Kernel(series, m["abi"], m["version"], m["packages"])
        log(f"vmfrag: apt's lists no longer have Linux {series}; using the cached {kernel.abi} {kernel.version}")
    download(kernel, log)
    unpack(kernel, log)
    write_atomically(manifest, json.dumps({"series": series, "abi": kernel.abi, "version": kernel.version,
                                           "packages": kernel.packages,
                                           "debs": {p: d.name for p, d in kernel.debs.items()}}, indent=2) + "\n")
    return kernel

