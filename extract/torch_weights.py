"""`--weights PATH` for torch backbones: read a local state dict (.safetensors, or a torch pickle read with
weights_only=True: .pt, .pth, .bin), identify it by its sha256, and load it into a model with errors that name
the option. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

# the wrappers training scripts save a model's state dict under (DINO: "teacher"/"student", timm: "state_dict_ema")
WRAPPER_KEYS = ("state_dict", "model", "teacher", "module", "state_dict_ema", "model_ema")
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                      "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def file_sha256(path: str | Path) -> str:
    """The file's sha256 (hex): what the cache's config records of the weights."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def read_safetensors(path: Path) -> dict[str, Any]:
    """A .safetensors file (8-byte little-endian header length, a JSON header, then the raw tensors) -> tensors."""
    import torch

    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError("too short for a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ValueError("its header runs past the end of the file")
    header = json.loads(data[8: 8 + length])
    body = memoryview(data)[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"tensor {name}: dtype {entry['dtype']} is not supported")
        start, stop = entry["data_offsets"]
        flat = torch.frombuffer(bytearray(body[start:stop]), dtype=getattr(torch, dtype)) if stop > start else \
            torch.empty(0, dtype=getattr(torch, dtype))
        tensors[name] = flat.reshape(entry["shape"])
    return tensors


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The tensors of a weights file, unwrapped (a {"state_dict": ...} checkpoint, "module." prefixes of
    DataParallel); PipelineError naming --weights for a file that is not one."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = read_safetensors(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle, zip, JSON and torch errors alike: one line)
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise PipelineError(f"--weights {path}: not a readable state dict ({type(e).__name__}: {first})") from None
    while isinstance(state, dict) and not _is_tensor_dict(state):
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not _is_tensor_dict(state):
        raise PipelineError(f"--weights {path}: holds no state dict of tensors (top-level keys: "
                            f"{', '.join(map(str, list(state)[:6])) if isinstance(state, dict) else type(state).__name__})")
    prefix = "module."
    if all(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _is_tensor_dict(state: dict) -> bool:
    import torch

    return bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


def load_into(model: Any, state: dict[str, Any], path: str | Path, optional_prefixes: tuple[str, ...]) -> None:
    """Load `state` into `model`: every key of the model must be there but the classifier's (`optional_prefixes`,
    unused for features), nothing may be left over, shapes must agree; else one line naming --weights."""
    own = model.state_dict()
    unexpected = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state and not k.startswith(optional_prefixes))
    shapes = [f"{k} {tuple(state[k].shape)} (the model's {tuple(own[k].shape)})" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    for what, names in (("has keys the model lacks", unexpected), ("lacks the model's keys", missing),
                        ("has tensors of other shapes", shapes)):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            raise PipelineError(f"--weights {path}: {what}: {', '.join(names[:3])}{more} (weights of another "
                                "architecture?)")
    model.load_state_dict(state, strict=False)
