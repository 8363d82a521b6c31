"""The end of a run under ``accelerate launch`` / ``torchrun``: every process meets, then the process group goes.

A process that exits with its gloo process group still alive can abort at interpreter shutdown (SIGABRT, "terminate
called without an active exception"): gloo's worker threads still hold work that is destroyed while the interpreter is
torn down (pytorch/pytorch#190489; an atexit fix was proposed and withdrawn in pytorch/pytorch#179291). transformers'
example scripts never destroy the group; the package's scripts and the CLI do, at the end of a successful run, through
this one function. A run on one process has no group and this is a no-op.
"""

from __future__ import annotations

import sys

__all__ = ["end_distributed_run"]


def end_distributed_run() -> None:
    """Barrier, then destroy the default process group, when one was set up; otherwise nothing.

    Call it once, on every process, after the last collective operation of a successful run (a process that failed
    must not wait at the barrier for the others: it exits and the launcher stops the rest)."""
    if "torch" not in sys.modules:  # nothing imported torch: no group can exist
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
