"""What stops a kernel replay: the kernel side failing (exit 1) or a trace it cannot replay (exit 2)."""

class KernelError(RuntimeError):
    """The kernel side could not run or said nothing usable: exit 1, never a silent pass."""


class TraceError(ValueError):
    """A trace this command cannot replay in the kernel: `FILE:LINE: error: ...`, exit 2."""
