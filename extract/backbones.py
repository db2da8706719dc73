"""Which implementation a `--backbone` gets, behind one contract (`extract.embedding.Embedder`): TF-Hub's
(`extract.backbone`: a hub handle, a SavedModel, random-resnet50v2) or PyTorch's (`extract.torch_backbone`:
torchvision:<arch>, timm:<name>). Each resolves its own device and precision. Importing this module loads
neither framework; a torch backbone never loads TensorFlow.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from pipeline.errors import PipelineError

from .backbone_names import torch_handle


def check_backbone_options(p: dict[str, Any]) -> None:
    """--backbone, --weights and --device against each other, before anything loads; one line naming the option."""
    parsed = torch_handle(p["backbone"])
    if parsed is None:
        if p.get("weights") is not None:
            raise PipelineError(f"--weights: is for torchvision:<arch> and timm:<name> backbones; --backbone "
                                f"{p['backbone']} brings its own weights")
        if p.get("device", "auto") != "auto":
            raise PipelineError(f"--device {p['device']}: is for torchvision:<arch> and timm:<name> backbones; "
                                "TensorFlow runs its model on a GPU when it sees one (CUDA_VISIBLE_DEVICES= hides it)")
        return
    from .torch_backbone import check_weights  # torch-free until the model is built

    library, name = parsed
    if not name:
        raise PipelineError(f"--backbone {p['backbone']}: name the {library} model, e.g. "
                            + ("torchvision:resnet50" if library == "torchvision" else "timm:vit_small_patch14_dinov2"))
    if find_spec(library) is None:
        raise PipelineError(f"--backbone {p['backbone']}: {library} is not installed"
                            + ("; pip install timm" if library == "timm" else
                               "; see docs/extraction.md, 'PyTorch backbones', for the install"))
    check_weights(p["backbone"], p.get("weights"))


def load_for_options(p: dict[str, Any]) -> Any:
    """The backbone extract-features' options ask for, loaded, its precision (and a torch one's device) resolved."""
    if torch_handle(p["backbone"]) is not None:
        from .torch_backbone import load_torch_backbone

        return load_torch_backbone(p["backbone"], p.get("weights"), p["image_size"], spatial=p["spatial"],
                                   seed=p["seed"], device=p.get("device", "auto"), precision=p["precision"])
    from . import backbone, precision  # module attributes: tests replace load_backbone and the device probes

    used = precision.resolve_precision(p["precision"], precision.prepare_devices())
    return backbone.load_backbone(p["backbone"], p["image_size"], spatial=p["spatial"], seed=p["seed"],
                                  model_cache=p["model_cache"], precision=used)


def config_record(p: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """(preprocessing, model) the cache's config records for these options: TF-Hub's contract and no model record,
    without loading anything; a torch backbone's are read off the model, built on the CPU in float32."""
    from .config import PREPROCESSING

    if torch_handle(p["backbone"]) is None:
        return PREPROCESSING, None
    from .torch_backbone import load_torch_backbone

    net = load_torch_backbone(p["backbone"], p.get("weights"), p["image_size"], seed=p["seed"], device="cpu",
                              precision="fp32")
    return net.preprocessing, net.model
