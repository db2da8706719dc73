"""Where a torch backbone runs and in which precision: `--device {auto,cpu,cuda}` and `--precision` for torch.

The precision follows the one rule (`pipeline.precision`), as TensorFlow's and stage 2's do, with what torch adds
on a GPU (bfloat16):

- `auto`: on CUDA bf16 where the GPU has it (Ampere and later), else fp16; on a CPU bf16 where it has native
  bfloat16 (AMX or AVX512_BF16), else fp32.
- `bf16`: torch.autocast(bfloat16), on a GPU that has it or a CPU with native bfloat16; elsewhere one line.
- `fp16`: torch.autocast(float16), on a GPU only.
- `fp32`: float32 throughout.

Features are returned float32 whatever the precision. On a CPU torch runs as many threads as the process may
use (its CPU affinity), unless OMP_NUM_THREADS says otherwise (the launchers set it per shard).
"""

from __future__ import annotations

import os
import warnings

from pipeline import precision as rule
from pipeline.errors import PipelineError


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU. Tests replace this to simulate a GPU machine."""
    import torch

    with warnings.catch_warnings():  # a CUDA build on a machine without a driver warns "Error 302"; that is a no
        warnings.simplefilter("ignore")
        return bool(torch.cuda.is_available())


def cuda_bf16() -> bool:
    """Whether torch runs bfloat16 on its CUDA device (Ampere and later). Tests replace this."""
    import torch

    return bool(torch.cuda.is_bf16_supported())


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one stops with one line naming --device."""
    if requested not in ("auto", "cpu", "cuda"):
        raise PipelineError(f"--device: expected one of auto, cpu, cuda, found {requested!r}")
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested == "cuda" and not cuda_available():
        import torch

        raise PipelineError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU (built for CUDA "
                            f"{torch.version.cuda or 'none: a CPU build'}); use --device cpu or auto")
    return requested


def resolve_torch_precision(requested: str, device: str) -> str:
    """torch's capabilities on `device` ("cpu" or "cuda"), through the one rule (pipeline.precision.resolve):
    'auto' -> bf16 / fp16 / fp32; an explicit choice it cannot run stops with one line naming --precision."""
    return rule.resolve(requested, rule.machine(device, cuda_bf16=device == "cuda" and cuda_bf16()))


def autocast_dtype(precision: str):
    """The torch.autocast dtype of a resolved precision; None for fp32."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def cpu_threads() -> int:
    """Threads for torch's CPU kernels: OMP_NUM_THREADS when set, else the cores this process may use."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_cpu_threads() -> int:
    """Keep torch to `cpu_threads()` intra-op threads (and one inter-op thread: one model, one stream of batches)."""
    import torch

    threads = cpu_threads()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started in this process
        pass
    return threads


def decode_workers(device: str) -> int:
    """Threads decoding images ahead of the model: on a GPU every core but one (decoding bounds the rate there);
    on a CPU one (the model's threads keep the cores)."""
    if device == "cuda":
        return max(1, min(32, cpu_threads() - 1))
    return 1
