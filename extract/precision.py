"""Where the backbone runs and in which precision: `--precision {auto,fp32,bf16,fp16}`.

- `fp32`: float32 everywhere.
- `bf16`: oneDNN bfloat16 auto-mixed precision on the CPU (a Grappler rewrite of the model's graph);
  needs a CPU with native bfloat16 (Intel AMX or AVX512_BF16), where it is about twice as fast.
- `fp16`: Grappler's float16 auto-mixed precision on a CUDA GPU.
- `auto`: fp16 on a GPU, bf16 on a CPU with native bfloat16, else fp32.

Features are stored as float32 whatever the precision; the precision used is part of the cache's
config. The rewrite applies to functions loaded after `apply_precision`, so it is set before the
backbone is loaded (`extract.backbone.load_backbone(..., precision=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_PRECISION = "auto"  # chosen from the measured comparison in README ("Precision")
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
    """True on a CPU with AMX or AVX512_BF16. Tests replace this to simulate other CPUs."""
    return bool(cpu_bf16_flags(cpuinfo))


def cpu_model_name(cpuinfo: Path = CPUINFO) -> str:
    import platform

    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or "unknown CPU"


def list_gpus() -> list[str]:
    """Names of the GPUs TensorFlow sees. Tests replace this to simulate a GPU machine."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


@dataclass(frozen=True)
class Devices:
    gpus: tuple[str, ...]
    cpu_bf16: bool
    cpu_name: str


def prepare_devices() -> Devices:
    """Tell TensorFlow to grow GPU memory as needed (instead of taking all of it); say what is here.

    Call before TensorFlow runs its first op: memory growth cannot be changed once a GPU is in use.
    """
    import tensorflow as tf

    gpus = list_gpus()
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is already initialised: keep its setting
            pass
    return Devices(tuple(gpus), cpu_has_native_bf16(), cpu_model_name())


def resolve_precision(requested: str, devices: Devices) -> str:
    """'auto' -> fp16 / bf16 / fp32 for this machine; an explicit choice this machine cannot run stops
    with one line naming --precision."""
    if requested not in PRECISIONS:
        raise PipelineError(f"--precision: expected one of {', '.join(PRECISIONS)}, found {requested!r}")
    if requested == "auto":
        return "fp16" if devices.gpus else "bf16" if devices.cpu_bf16 else "fp32"
    if requested == "bf16":
        if devices.gpus:
            raise PipelineError(f"--precision bf16: is oneDNN's CPU mode, but TensorFlow runs the model on the GPU "
                                f"({devices.gpus[0]}); use --precision fp16 (or auto) on a GPU")
        if not devices.cpu_bf16:
            raise PipelineError(f"--precision bf16: this CPU ({devices.cpu_name}) has no native bfloat16 (neither "
                                f"{' nor '.join(BF16_FLAGS)} among its flags), where bfloat16 would be emulated and slower; "
                                "use --precision fp32 (or auto)")
    if requested == "fp16" and not devices.gpus:
        raise PipelineError("--precision fp16: mixed float16 needs a GPU and TensorFlow sees none "
                            "(install the GPU build with pip install -e '.[gpu]'); on a CPU use --precision bf16, fp32 or auto")
    return requested


def apply_precision(precision: str) -> None:
    """Switch Grappler's auto-mixed-precision rewrites for functions loaded from now on."""
    import tensorflow as tf

    if precision not in PRECISIONS[1:]:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS[1:])}, found {precision!r}")
    tf.config.optimizer.set_experimental_options({
        "auto_mixed_precision_onednn_bfloat16": precision == "bf16",
        "auto_mixed_precision": precision == "fp16",
    })
