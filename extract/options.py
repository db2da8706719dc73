"""The extraction options a study spec also sets, as data (no TensorFlow import): each one's default, limit and
help, written once. `extract-features` builds its flags from them (`click_option`) and a study reads its spec
keys through them (`ExtractOption.check`), so a spec and the flags cannot disagree on a default or a limit,
and a bad spec value is refused up front in one line naming the spec key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from pipeline.errors import PipelineError
from pipeline.precision import PRECISIONS

from .backbone_names import DEFAULT_HANDLE, RANDOM_RESNET, RANDOM_WEIGHTS
from .precision import DEFAULT_PRECISION

DEVICES = ("auto", "cpu", "cuda")  # --device: where a torch backbone runs (TensorFlow places its model itself)


@dataclass(frozen=True)
class ExtractOption:
    """One extraction option: its extract-features flag, its study spec key, its type, default and limits."""

    name: str  # extract-features' parameter name; the flag is --name-with-dashes
    spec_key: str  # "[table] key" of a study spec: "backbone.image_size"
    default: Any
    help: str
    kind: type = int  # int, float or str
    minimum: float | None = None  # inclusive
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def click_type(self) -> click.ParamType | type:
        if self.choices:
            return click.Choice(self.choices)
        if self.minimum is not None:
            return (click.IntRange if self.kind is int else click.FloatRange)(self.minimum)
        return self.kind

    def click_option(self, show_default: bool = True) -> Any:
        """The extract-features option (a click decorator)."""
        return click.option(self.flag, self.name, default=self.default, type=self.click_type(),
                            show_default=show_default and self.default is not None, help=self.help)

    def check(self, value: Any, where: str) -> Any:
        """A spec value against this option's type and limits; the value, or one PipelineError naming `where`."""
        if value is None and self.default is None:
            return None
        kinds = (int, float) if self.kind is float else (self.kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise PipelineError(f"{where}: expected {'a number' if self.kind is float else self.kind.__name__}, "
                                f"found {value!r}")
        if self.choices and value not in self.choices:
            raise PipelineError(f"{where}: expected one of {', '.join(self.choices)}, found {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise PipelineError(f"{where}: expected at least {self.minimum:g} (extract-features {self.flag} refuses "
                                f"less), found {value!r}")
        return float(value) if self.kind is float else value


EXTRACT_OPTIONS: tuple[ExtractOption, ...] = (
    ExtractOption("backbone", "backbone.handle", DEFAULT_HANDLE,
                  f"TF-Hub handle (URL), local SavedModel directory, '{RANDOM_RESNET}' (random weights, offline), or a "
                  "PyTorch model: torchvision:<arch> (resnet50, vit_b_16, ...) or timm:<name> (with timm installed), "
                  "which needs --weights.", str),
    ExtractOption("weights", "backbone.weights", None,
                  f"torchvision:/timm: backbones only: '{RANDOM_WEIGHTS}' (seeded from --seed, UNTRAINED) or a local "
                  "state dict file (.safetensors, .pt, .pth, .bin); nothing is downloaded.  [required for them]", str),
    ExtractOption("device", "backbone.device", "auto",
                  "torchvision:/timm: backbones only: where the model runs; auto is cuda when torch sees a GPU, else cpu.",
                  str, choices=DEVICES),
    ExtractOption("image_size", "backbone.image_size", 224, "Model input size S (images are resized to S x S).",
                  minimum=32),
    ExtractOption("batch_size", "backbone.batch_size", 64,
                  "Backbone inputs per forward pass (images x views per image, rounded down to whole images).",
                  minimum=1),
    ExtractOption("precision", "backbone.precision", DEFAULT_PRECISION,
                  "Backbone arithmetic: fp32; bf16 (oneDNN bfloat16 mixed precision, CPUs with AMX or AVX512_BF16; "
                  "torch backbones also on a GPU); fp16 (mixed float16, GPU); auto (on a GPU fp16, torch backbones bf16 "
                  "where the GPU has it; else bf16 where the CPU has it, else fp32). "
                  "Features are stored float32; the precision used is part of the cache's config.",
                  str, choices=PRECISIONS),
    ExtractOption("seed", "backbone.seed", 0,
                  "Seed of the view permutations (and of random-resnet50v2's and --weights random's weights).", minimum=0),
    ExtractOption("model_cache", "backbone.model_cache", "data/models", "Where random-resnet50v2 is saved once.", str),
    ExtractOption("num_views", "views.num_views", 4, "Shuffled views V per image and kind.", minimum=1),
    ExtractOption("jigsaw_grid", "views.jigsaw_grid", 3, "Jigsaw grid G (G x G tiles).", minimum=2),
    ExtractOption("rcm_grid", "views.rcm_grid", 7, "RCM grid R (R x R regions).", minimum=2),
    ExtractOption("rcm_k", "views.rcm_k", 2.0, "RCM neighbourhood range k (1 <= k < R).", float, minimum=1),
    ExtractOption("patch_grid", "views.patch_grid", 3, "patches: G x G cells of the resized image, one patch crop each.",
                  minimum=2),
    ExtractOption("patch_size", "views.patch_size", None,
                  "patches: crop size in pixels [default: 64/85 of a cell, VISSL's proportion: 56 px at 224].", minimum=1),
    ExtractOption("patch_jitter", "views.patch_jitter", None,
                  "patches: each crop's random offset inside its cell, 0..J pixels per axis [default: cell - patch].",
                  minimum=0),
)
EXTRACT = {o.name: o for o in EXTRACT_OPTIONS}
