"""The kernel jobs' entry points, for scripts/vmfrag (`kernel-replay`, `confirm`) and the ci and
nightly jobs (`confirm_findings`). The work is in vmfrag_jobs/kernel/, one module per job; see
kernel/README.md."""
__all__ = ["add_kernel_parsers", "confirm_findings", "KernelError", "TraceError"]

from .kernel.commands import add_kernel_parsers  # noqa: F401
from .kernel.confirmation import confirm_findings  # noqa: F401
from .kernel.errors import KernelError, TraceError  # noqa: F401
