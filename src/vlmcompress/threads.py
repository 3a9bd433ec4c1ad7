"""The one place the thread policy is set.

``OMP_WAIT_POLICY=ACTIVE`` keeps PyTorch's worker threads spinning between ops: on a small CPU it makes training
several times faster (waking a sleeping thread costs ~3.5 ms per op), but the spinning threads take the cores from
everything else, so latency figures become meaningless on a shared machine and ONNX Runtime in the same process runs
at half speed. So it is set only for a training process (the distill command and the training recipes), before torch
is imported, and never at import of vlmcompress or by a command that measures latency.
"""

from __future__ import annotations

import os
import sys


def use_training_thread_policy() -> bool:
    """Spin OpenMP threads in this training process (unless the user chose a policy). Call before torch is imported;
    returns whether the policy is in effect for this process."""
    if "torch" in sys.modules:
        return os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "ACTIVE"


#: the torch threads of a training process when its --threads is 0; OMP_NUM_THREADS is not read for this, since
#: ``accelerate launch`` without a config sets it to 1 even for one process
THREADS_ENV = "VLMCOMPRESS_THREADS"


def share_of_cores(processes: int = 1) -> int:
    """The machine's cores divided by the processes that share them (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def set_threads(threads: int = 0, processes: int = 1) -> int:
    """torch threads per process: ``threads``, else VLMCOMPRESS_THREADS, else the machine's cores divided by the
    processes."""
    import torch

    from .errors import VlmcompressError

    env = os.environ.get(THREADS_ENV, "").strip()
    if not threads and env:
        if not env.isdigit() or int(env) < 1:
            raise VlmcompressError(f"{THREADS_ENV}={env!r}: expected a whole number of threads >= 1, or unset it")
        threads = int(env)
    n = threads or share_of_cores(processes)
    torch.set_num_threads(n)
    return n
