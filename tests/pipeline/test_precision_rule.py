"""The one --precision rule (pipeline.precision.resolve): its table of (asked, device, capabilities) -> choice, and
its one-line refusals naming --precision. Each framework's reader is tested beside it (tests/extract/test_precision.py
for TensorFlow, tests/extract/test_torch_options.py and tests/heads/test_precision_once.py for torch)."""

from __future__ import annotations

import pytest

import pipeline.precision as rule
from pipeline.errors import PipelineError
from pipeline.precision import Capabilities, check_resolved, resolve

CPU = "Test CPU 9000"


@pytest.mark.parametrize("asked, device, cpu_bf16, cuda_bf16, expected", [
    # auto: bf16 where it is native, else fp16 on CUDA and fp32 on a CPU
    ("auto", "cpu", True, False, "bf16"),
    ("auto", "cpu", False, False, "fp32"),
    ("auto", "cpu", False, True, "fp32"),  # a CUDA device's bfloat16 says nothing of the CPU's
    ("auto", "cuda", False, True, "bf16"),
    ("auto", "cuda", True, False, "fp16"),  # the CPU's bfloat16 says nothing of the GPU's (TensorFlow's GPU: fp16)
    ("auto", "cuda", False, False, "fp16"),
    # explicit choices run where they can
    ("fp32", "cpu", False, False, "fp32"),
    ("fp32", "cuda", False, False, "fp32"),
    ("bf16", "cpu", True, False, "bf16"),
    ("bf16", "cuda", False, True, "bf16"),
    ("fp16", "cuda", False, False, "fp16"),
    ("fp16", "cuda", True, True, "fp16"),
    # and are refused where they cannot
    ("bf16", "cpu", False, True, "--precision bf16: this CPU (Test CPU 9000) has no native bfloat16"),
    ("bf16", "cuda", True, False, "--precision bf16: this GPU has no bfloat16 (before Ampere); use --precision fp16"),
    ("fp16", "cpu", True, True, "--precision fp16: mixed float16 needs a GPU (--device cuda); on a CPU use"),
    ("fp8", "cpu", True, False, "--precision: expected one of auto, fp32, bf16, fp16, found 'fp8'"),
])
def test_the_rule(asked, device, cpu_bf16, cuda_bf16, expected):
    can = Capabilities(device, cpu_bf16=cpu_bf16, cuda_bf16=cuda_bf16, cpu_name=CPU)
    if expected.startswith("--"):
        with pytest.raises(PipelineError) as e:
            resolve(asked, can)
        assert str(e.value).startswith(expected) and "\n" not in str(e.value)
    else:
        assert resolve(asked, can) == expected
        assert resolve(expected, can) == expected  # a resolved value resolves to itself


def test_a_framework_names_its_own_reasons():
    tf_gpu = Capabilities("cuda", cuda_no_bf16="is oneDNN's CPU mode, but TensorFlow runs the model on the GPU (G0)",
                          fp16_needs="a GPU and TensorFlow sees none")
    with pytest.raises(PipelineError, match=r"^--precision bf16: is oneDNN's CPU mode, .* \(G0\); use --precision fp16"):
        resolve("bf16", tf_gpu)
    with pytest.raises(PipelineError, match=r"^--precision fp16: mixed float16 needs a GPU and TensorFlow sees none;"):
        resolve("fp16", Capabilities("cpu", fp16_needs="a GPU and TensorFlow sees none"))


def test_the_machine_reads_the_cpu_flags_here(monkeypatch):
    monkeypatch.setattr(rule, "cpu_has_native_bf16", lambda *a: True)
    monkeypatch.setattr(rule, "cpu_model_name", lambda *a: CPU)
    assert rule.machine("cpu") == Capabilities("cpu", cpu_bf16=True, cuda_bf16=False, cpu_name=CPU)
    assert resolve("auto", rule.machine("cpu")) == "bf16"
    monkeypatch.setattr(rule, "cpu_has_native_bf16", lambda *a: False)
    assert resolve("auto", rule.machine("cpu")) == "fp32" and resolve("auto", rule.machine("cuda", True)) == "bf16"


@pytest.mark.parametrize("flags, expected", [
    ("fpu avx512f avx512_bf16 avx512_vnni", ["avx512_bf16"]),
    ("fpu avx512f amx_bf16 amx_tile avx512_bf16", ["amx_bf16", "avx512_bf16"]),
    ("fpu avx2 avx512f avx512bw avx512vl avx512_vnni", []),  # AVX-512 without bf16: emulated, so not native
])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: {CPU}\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert rule.cpu_bf16_flags(info) == expected and rule.cpu_has_native_bf16(info) == bool(expected)
    assert rule.cpu_model_name(info) == CPU
    assert rule.cpu_bf16_flags(tmp_path / "missing") == []  # no /proc (not Linux): no native bf16


@pytest.mark.parametrize("value", ["fp32", "bf16", "fp16"])
def test_a_resolved_precision_is_concrete(value):
    assert check_resolved(value) == value
    with pytest.raises(ValueError, match="resolve --precision once"):
        check_resolved("auto")
