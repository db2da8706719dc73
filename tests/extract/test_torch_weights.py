"""--weights PATH: a local state dict (.safetensors, .pt) read without a download, identified by its sha256,
loaded with one-line refusals for files of another architecture."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
import torch

from extract.torch_weights import file_sha256, load_into, read_state_dict
from pipeline.errors import PipelineError
from tests.extract.torch_support import tiny_net


def write_safetensors(path, tensors: dict) -> None:
    """The format by hand (8-byte header length, JSON header, raw little-endian data), so the reader is checked
    against the format, not against itself."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else \
            t.contiguous().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


@pytest.fixture
def state():
    return tiny_net(seed=5).module.state_dict()


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)


def test_safetensors_and_pickled_state_dicts_read_alike(state, tmp_path):
    write_safetensors(tmp_path / "w.safetensors", state)
    torch.save(state, tmp_path / "w.pt")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "ckpt.pth")
    for name in ("w.safetensors", "w.pt", "ckpt.pth"):
        assert same(read_state_dict(tmp_path / name), state), name
    bf16 = {"x": torch.arange(6, dtype=torch.float32).reshape(2, 3).bfloat16()}
    write_safetensors(tmp_path / "b.safetensors", bf16)
    assert torch.equal(read_state_dict(tmp_path / "b.safetensors")["x"], bf16["x"])


def test_the_hash_is_the_files_sha256(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"abc" * 1000)
    assert file_sha256(tmp_path / "w.bin") == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_weights_load_into_the_model(state):
    net = tiny_net(seed=0)
    load_into(net.module, state, "w.pt", ())
    assert same(net.module.state_dict(), state)
    x = torch.rand(1, 3, 16, 16)
    np.testing.assert_array_equal(net.forward(x, False)[0].detach(), tiny_net(seed=5).forward(x, False)[0].detach())


@pytest.mark.parametrize("edit,message", [
    (lambda s: {**s, "extra.weight": torch.zeros(1)}, "has keys the model lacks: extra.weight"),
    (lambda s: {k: v for k, v in s.items() if k != "0.bias"}, "lacks the model's keys: 0.bias"),
    (lambda s: {**s, "0.bias": torch.zeros(5)}, r"has tensors of other shapes: 0.bias \(5,\) \(the model's \(4,\)\)"),
])
def test_weights_of_another_architecture_are_one_line(state, edit, message):
    with pytest.raises(PipelineError, match=r"^--weights w.pt: " + message + r".*\(weights of another architecture\?\)$"):
        load_into(tiny_net().module, edit(state), "w.pt", ())


def test_a_classifier_missing_from_the_file_is_allowed(state):
    """Feature weights often come without the classifier (DINO, a backbone-only export): it is never used."""
    net = tiny_net()
    load_into(net.module, {k: v for k, v in state.items() if not k.startswith("2.")}, "w.pt", ("2.",))


@pytest.mark.parametrize("content,message", [
    (b"not a checkpoint", "not a readable state dict"),
    (None, "holds no state dict of tensors"),
])
def test_a_file_that_is_not_a_state_dict_is_one_line(tmp_path, content, message):
    path = tmp_path / "w.pt"
    if content is None:
        torch.save({"epoch": 3, "lr": 0.1}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(PipelineError, match=f"^--weights {path}: {message}"):
        read_state_dict(path)
