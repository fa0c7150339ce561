"""The guest's console: `parse_console` finds the module's lines among the firmware's and the
kernel's output and refuses loudly anything incomplete (no module, nothing printed, output cut
short, ops that are not the trace's)."""
import re
from dataclasses import dataclass

from .errors import KernelError


@dataclass
class Outcome:
    kind: str        # 'a', 'f' or 'p'
    status: str      # 'ok' or 'fail' (a), 'ok' or 'none' (f), 'ok' (p)
    value: int = 0   # a ok: offset in the window; a fail: pages available
    lazy_nr: int = None  # the kernel's vmap_lazy_nr after the op (None: symbol not found)


@dataclass
class KernelRun:
    release: str
    version: str
    window: int
    cpus: int
    lazy_max: int
    lazy_start: int
    replay_ns: int
    outcomes: list


BEGIN = re.compile(r'begin release=(\S+) version="([^"]*)" window=0x([0-9a-f]+) region=(\d+) cpus=(\d+) '
                   r'lazy_max=(\d+) lazy_nr=(found|missing) eager=(\d) ops=(\d+) lazy_start=(\d+|-)$')
OUTCOME = re.compile(r"o (\d+) (a (?:ok|fail) \d+|f (?:ok|none)|p ok) (\d+|-)$")
END = re.compile(r"end ops=(\d+) ns=(\d+)$")
INSMOD_FAILED = "vmfrag-init: insmod failed"


def tail_of(text, n=15):
    lines = [ln for ln in text.replace("\r", "").splitlines() if ln.strip()]
    return "\n".join("  | " + ln for ln in lines[-n:]) or "  | (nothing)"


def parse_console(text, trace):
    """The module's lines out of the guest's console (kernel messages around and `\\r\\n` line
    ends are ignored). Raises KernelError when the module did not load, printed nothing, stopped
    early, or printed ops that are not the trace's."""
    if not text.strip():
        raise KernelError("the guest printed nothing: no kernel, no module output")
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n")]
    if INSMOD_FAILED in lines:
        raise KernelError("the module did not load (insmod failed); the guest's console ends with:\n"
                          + tail_of(text))
    begin = next((BEGIN.search(ln) for ln in lines if BEGIN.search(ln)), None)
    if begin is None:
        raise KernelError("the module printed no 'begin' line; the guest's console ends with:\n" + tail_of(text))
    if int(begin.group(4)) != trace.region or int(begin.group(9)) != len(trace.ops):
        raise KernelError(f"the module replayed another input (region {begin.group(4)}, "
                          f"{begin.group(9)} ops) than this trace (region {trace.region}, {len(trace.ops)} ops)")
    outcomes, end = [], None
    for ln in lines:
        m = OUTCOME.match(ln)
        if m:
            index = int(m.group(1))
            if index != len(outcomes) or index >= len(trace.ops):
                raise KernelError(f"the module's output is out of order at op {index}")
            words = m.group(2).split()
            if words[0] != trace.ops[index].kind:
                raise KernelError(f"the module replayed op {index} as '{words[0]}', the trace has "
                                  f"'{trace.ops[index].kind}' (line {trace.ops[index].line})")
            lazy = None if m.group(3) == "-" else int(m.group(3))
            outcomes.append(Outcome(words[0], words[1], int(words[2]) if len(words) > 2 else 0, lazy))
        elif END.match(ln):
            end = END.match(ln)
    if end is None or int(end.group(1)) != len(trace.ops) or len(outcomes) != len(trace.ops):
        raise KernelError(f"the module's output stops after {len(outcomes)} of {len(trace.ops)} ops; "
                          "the guest's console ends with:\n" + tail_of(text))
    lazy_start = None if begin.group(10) == "-" else int(begin.group(10))
    return KernelRun(release=begin.group(1), version=begin.group(2), window=int(begin.group(3), 16),
                     cpus=int(begin.group(5)), lazy_max=int(begin.group(6)), lazy_start=lazy_start,
                     replay_ns=int(end.group(2)), outcomes=outcomes)

