"""The trace as the kernel replay reads it, and the module's input: `read_trace` takes a vmtrace the
C++ reader has accepted and refuses, one line each, what the module cannot replay; `encode_ops`
packs its ops into the binary file the module reads (layout in kernel/vmfrag_replay.c)."""
import re
import struct
from dataclasses import dataclass, field

from .errors import TraceError

PAGE = 4096
U64_LIMIT = 1 << 64
# The window sits 1 TiB below the top of the kernel's 32 TiB vmalloc range and its start is
# aligned to the trace's largest alignment: above 1 TiB that cannot be honoured.
MAX_ALIGN = 1 << 40

MAGIC = b"VMFRAGK1"
HEADER = struct.Struct("<8s7Q")
OP = struct.Struct("<2I3Q")


@dataclass
class Op:
    index: int  # 0-based, over ops only
    line: int
    kind: str   # 'a', 'f' or 'p'
    id: int = 0
    size: int = 0
    align: int = PAGE
    text: str = ""


@dataclass
class Trace:
    path: str
    region: int
    guard: int = 1
    lazy: int = 8192
    phys: int = 256 << 20
    backing: str = "none"
    ops: list = field(default_factory=list)


SIZE = re.compile(r"([0-9]+)([KMGT]?)")
SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    m = SIZE.fullmatch(text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * SUFFIX[m.group(2)]


def read_trace(path, display=None):
    """Reads a vmtrace that the C++ reader has already accepted (so its errors are the reader's
    own), and refuses, one line each, what the kernel replay cannot do: k, m and h ops (kmalloc,
    vm_map_ram and vmalloc_huge have no counterpart in the module) and alignments above 1 TiB."""
    name = display or str(path)
    t = Trace(path=name, region=0)
    with open(path, "rb") as f:
        data = f.read()
    for lineno, raw in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        words = raw.split("#", 1)[0].split()
        if not words or words[0] == "vmtrace":
            continue
        key, args = words[0], words[1:]
        try:
            if key in ("region", "phys"):
                setattr(t, key, parse_size(args[0]))
            elif key in ("guard", "lazy"):
                setattr(t, key, int(args[0]))
            elif key == "backing":
                t.backing = args[0]
            elif key == "a":
                align = parse_size(args[2]) if len(args) > 2 else PAGE
                if align > MAX_ALIGN:
                    raise TraceError(f"{name}:{lineno}: error: align {args[2]} is above what a window "
                                     f"in the kernel's vmalloc range can honour (1T)")
                t.ops.append(Op(len(t.ops), lineno, "a", int(args[0]), parse_size(args[1]), align,
                                " ".join(words)))
            elif key == "f":
                t.ops.append(Op(len(t.ops), lineno, "f", int(args[0]), text=" ".join(words)))
            elif key == "p":
                t.ops.append(Op(len(t.ops), lineno, "p", text="p"))
            elif key in ("k", "m", "h"):
                what = {"k": "kmalloc", "m": "vm_map_ram", "h": "vmalloc_huge"}[key]
                raise TraceError(f"{name}:{lineno}: error: op '{key}' ({what}) cannot be replayed in the "
                                 f"kernel: kernel-replay and confirm replay only a, f and p")
            else:
                raise TraceError(f"{name}:{lineno}: error: unknown directive or op '{key[:40]}'")
        except (IndexError, ValueError) as e:
            if isinstance(e, TraceError):
                raise
            raise TraceError(f"{name}:{lineno}: error: malformed '{key[:40]}' line") from None
    if not t.region:
        raise TraceError(f"{name}: error: missing 'region' directive")
    return t


def area_need(size, guard):
    """The bytes an area takes with its guard, as vmfrag counts them; None when the size is 0 or
    the need overflows (invalid-argument in vmfrag)."""
    if size == 0:
        return None
    need = -(-size // PAGE) * PAGE + guard * PAGE
    return need if need < U64_LIMIT else None


def kernel_request(size, guard):
    """(size, no_guard) to ask the kernel for, so that its area, whose guard is always one page
    (none with VM_NO_GUARD), is exactly as long as vmfrag's area with `guard` pages of guard."""
    if guard == 0:
        return size, 1
    need = area_need(size, guard)
    if need is None:
        return size, 0  # the kernel refuses it too: size 0, or page rounding overflows
    return need - PAGE, 0


def encode_ops(trace):
    """The module's input (the layout is in kernel/vmfrag_replay.c): a header, then one 32-byte
    record per op. Each `a` gets its own slot; `f` names the slot of its id's latest `a`."""
    slot_of, out, nslots, no_guard = {}, [], 0, 1 if trace.guard == 0 else 0
    for op in trace.ops:
        if op.kind == "a":
            size, _ = kernel_request(op.size, trace.guard)
            out.append(OP.pack(ord("a"), 0, size, op.align, nslots))
            slot_of[op.id] = nslots
            nslots += 1
        elif op.kind == "f":
            out.append(OP.pack(ord("f"), 0, 0, 0, slot_of.pop(op.id)))
        else:
            out.append(OP.pack(ord("p"), 0, 0, 0, 0))
    max_align = max([PAGE] + [op.align for op in trace.ops if op.kind == "a"])
    header = HEADER.pack(MAGIC, trace.region, no_guard, 1 if trace.lazy == 0 else 0, max_align,
                         len(trace.ops), nslots, 0)
    return header + b"".join(out)

