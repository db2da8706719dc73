"""Where the backbone runs and in which precision: `--precision {auto,fp32,bf16,fp16}`.

- `fp32`: float32 everywhere.
- `bf16`: oneDNN bfloat16 auto-mixed precision on the CPU (a Grappler rewrite of the model's graph);
  needs a CPU with native bfloat16 (Intel AMX or AVX512_BF16), where it is about twice as fast.
- `fp16`: Grappler's float16 auto-mixed precision on a CUDA GPU.
- `auto`: fp16 on a GPU, bf16 on a CPU with native bfloat16, else fp32 (pipeline.precision's rule, given that
  TensorFlow's bfloat16 here is a CPU mode).

Features are stored as float32 whatever the precision; the precision used is part of the cache's
config. The rewrite applies to functions loaded after `apply_precision`, so it is set before the
backbone is loaded (`extract.backbone.load_backbone(..., precision=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import precision as rule

DEFAULT_PRECISION = "auto"  # chosen from the measured comparison in README ("Precision")


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
    return Devices(tuple(gpus), rule.cpu_has_native_bf16(), rule.cpu_model_name())


def resolve_precision(requested: str, devices: Devices) -> str:
    """TensorFlow's capabilities, through the one rule (pipeline.precision.resolve): the model runs on the GPU when
    TensorFlow sees one, where this project's bfloat16 (oneDNN's, a CPU rewrite) does not apply."""
    gpu = devices.gpus[0] if devices.gpus else ""
    return rule.resolve(requested, rule.Capabilities(
        "cuda" if devices.gpus else "cpu", cpu_bf16=devices.cpu_bf16, cuda_bf16=False, cpu_name=devices.cpu_name,
        cuda_no_bf16=f"is oneDNN's CPU mode, but TensorFlow runs the model on the GPU ({gpu})",
        fp16_needs="a GPU and TensorFlow sees none (install the GPU build with pip install -e '.[gpu]')"))


def apply_precision(precision: str) -> None:
    """Switch Grappler's auto-mixed-precision rewrites for functions loaded from now on."""
    import tensorflow as tf

    rule.check_resolved(precision)
    tf.config.optimizer.set_experimental_options({
        "auto_mixed_precision_onednn_bfloat16": precision == "bf16",
        "auto_mixed_precision": precision == "fp16",
    })
