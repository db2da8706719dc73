"""The one rule for `--precision {auto,fp32,bf16,fp16}`, shared by every framework and stage (no torch, no TensorFlow).

`resolve(asked, capabilities)` is the rule; each framework reads its own capabilities where it runs and calls it
(TensorFlow: extract.precision; torch: extract.torch_device and heads.training.step). The rule:

- `auto` on a CUDA device: bf16 where the framework runs bfloat16 there (torch on Ampere and later), else fp16;
  on a CPU: bf16 where it has native bfloat16 (AMX or AVX512_BF16 among the /proc/cpuinfo flags), else fp32.
- `bf16`: only where `auto` would pick it (elsewhere bfloat16 is emulated, and slower, or does not run).
- `fp16`: on a CUDA device only. `fp32`: anywhere.

A precision the machine cannot run stops with one line naming --precision (PipelineError: exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CONCRETE = PRECISIONS[1:]  # what a resolved precision is
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bfloat16 arithmetic
CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str, cpuinfo: Path) -> str:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:  # not Linux, or no /proc
        return ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return ""


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """The native-bfloat16 flags (amx_bf16, avx512_bf16) this CPU reports; empty when none or unknown."""
    flags = set(_cpuinfo_field("flags", cpuinfo).split())
    return [f for f in BF16_FLAGS if f in flags]


def cpu_has_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """True on a CPU with AMX or AVX512_BF16. Tests replace this (here) to simulate other CPUs."""
    return bool(cpu_bf16_flags(cpuinfo))


def cpu_model_name(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name, as /proc/cpuinfo (else the platform) gives it."""
    import platform

    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or "unknown CPU"


@dataclass(frozen=True)
class Capabilities:
    """What a framework can run where it runs the model, and the words its refusals use.

    device: "cpu" or "cuda"; cpu_bf16: the CPU has native bfloat16; cuda_bf16: the framework runs bfloat16 on
    its CUDA device; cpu_name: the CPU as a refusal names it; cuda_no_bf16: why bf16 cannot run on the CUDA
    device; fp16_needs: what fp16 would need, said when it is asked on a CPU."""

    device: str
    cpu_bf16: bool = False
    cuda_bf16: bool = False
    cpu_name: str = "unknown CPU"
    cuda_no_bf16: str = "this GPU has no bfloat16 (before Ampere)"
    fp16_needs: str = "a GPU (--device cuda)"


def machine(device: str, cuda_bf16: bool = False) -> Capabilities:
    """This machine's capabilities for a framework that runs on `device` ("cpu" or "cuda"): the CPU's native
    bfloat16 and name read here, the CUDA device's bfloat16 as the framework reports it (`cuda_bf16`)."""
    return Capabilities(device, cpu_has_native_bf16(), cuda_bf16, cpu_model_name())


def check_choice(asked: str) -> str:
    """`asked` when it is one of PRECISIONS, else one line naming --precision."""
    if asked not in PRECISIONS:
        raise PipelineError(f"--precision: expected one of {', '.join(PRECISIONS)}, found {asked!r}")
    return asked


def check_resolved(precision: str) -> str:
    """`precision` when it is concrete (fp32, bf16, fp16): what a stage passes on once it has resolved 'auto'."""
    if precision not in CONCRETE:
        raise ValueError(f"precision: expected a resolved one of {', '.join(CONCRETE)}, found {precision!r} "
                         "(resolve --precision once, where the device is known)")
    return precision


def resolve(asked: str, can: Capabilities) -> str:
    """THE rule: 'auto' -> fp32 / bf16 / fp16 for `can`; an explicit choice it cannot run stops with one line."""
    check_choice(asked)
    if can.device == "cuda":
        if asked == "auto":
            return "bf16" if can.cuda_bf16 else "fp16"
        if asked == "bf16" and not can.cuda_bf16:
            raise PipelineError(f"--precision bf16: {can.cuda_no_bf16}; use --precision fp16 (or auto)")
        return asked
    if asked == "auto":
        return "bf16" if can.cpu_bf16 else "fp32"
    if asked == "bf16" and not can.cpu_bf16:
        raise PipelineError(f"--precision bf16: this CPU ({can.cpu_name}) has no native bfloat16 (neither "
                            f"{' nor '.join(BF16_FLAGS)} among its flags), where bfloat16 would be emulated and "
                            "slower; use --precision fp32 (or auto)")
    if asked == "fp16":
        raise PipelineError(f"--precision fp16: mixed float16 needs {can.fp16_needs}; on a CPU use --precision "
                            "bf16, fp32 or auto")
    return asked
