"""What a study's report states about where and how it ran: software versions, the machine, a cache's attributes
and labels, whether the dataset is a synthetic sample, what extraction and the runs resolved (precision, device),
durations."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

PACKAGES = ("cub-ssl-cache", "numpy", "torch", "tensorflow", "h5py", "scipy", "matplotlib")


def versions() -> str:
    """Installed versions (read from the package metadata: TensorFlow is not imported here)."""
    out = [f"Python {platform.python_version()}"]
    for name in PACKAGES:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def machine() -> str:
    from pipeline.precision import cpu_model_name

    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # pragma: no cover - torch is a dependency
        pass
    return f"CPU {cpu_model_name()} ({os.cpu_count()} cores); GPU {gpu}"


def cache_attrs(path: str) -> dict[str, Any]:
    import h5py

    from pipeline.reader import file_attrs

    with h5py.File(path, "r") as f:
        attrs = file_attrs(f)
        attrs["class_names"] = [s.decode() if isinstance(s, bytes) else s for s in f["class_names"][...]]
    return attrs


def cache_labels(path: str) -> dict[int, int]:
    """image_id -> 0-based label of every row of a cache (what the runs' config.json image ids refer to)."""
    import h5py

    with h5py.File(path, "r") as f:
        return dict(zip(f["image_id"][...].tolist(), f["label"][...].tolist()))


SYNTHETIC_MARK = "made by make-sample-dataset"  # the README make-sample-dataset writes into every sample root


def synthetic_note(data_root: Any) -> str:
    """The first line of the dataset root's README when make-sample-dataset wrote it ('Synthetic sample in the
    CUB-200-2011 layout: 10 classes x 16 images, seed 0. Not birds; made by make-sample-dataset.'), else ''."""
    from pathlib import Path

    readme = Path(data_root) / "README"
    try:
        text = readme.read_text(errors="replace").strip()
    except OSError:
        return ""
    first = text.splitlines()[0].strip() if text else ""
    return first if SYNTHETIC_MARK in text and first.lower().startswith("synthetic") else ""


def runs_resolved(plan: Any, key: str) -> str:
    """What the selected runs resolved `key` (device, precision) to, read from their config.json (where each ran:
    in this process or on a worker), e.g. "cpu" or "cuda:0, cpu"; the plan's when no run says."""
    from heads.training import artifacts

    sweep = plan.spec.out / "sweep"
    selection = sweep / "selection.json"
    found: list[str] = []
    for entry in artifacts.read_json(selection)["selected"] if selection.is_file() else []:
        for rel in entry["runs"]:
            config = sweep / rel / "config.json"
            value = str((artifacts.read_json(config).get("resolved") or {}).get(key, "")) if config.is_file() else ""
            if value and value not in found:
                found.append(value)
    return ", ".join(found) or str(plan.device if key == "device" else plan.heads_precision)


def extraction_precision(attrs: dict[str, Any], spec: Any) -> str:
    """The precision the cache records (what extract-features resolved where it ran), and what was asked."""
    import json

    config = attrs.get("config")
    used = (json.loads(config) if isinstance(config, str) else config or {}).get("precision", "?")
    return used if spec.precision in (used, None) else f"{used} (asked {spec.precision})"


def fmt_time(seconds: float) -> str:
    from study.plan.units import fmt_seconds

    return fmt_seconds(seconds)


def input_check(attrs: dict[str, Any]) -> str:
    """The report's line on the input check extract-features ran over every split of the dataset
    (pipeline.datasets.integrity: each file in one split, identical bytes under two paths), read from the train
    cache's `input_check` attribute and its config's `source.skipped` (files a folder reader did not use)."""
    import json

    record, config = attrs.get("input_check"), attrs.get("config")
    if not record:
        return ("not recorded in the train cache (extracted before extract-features checked its input, or merged from "
                "shards: the launching command ran it and printed what it found)")
    found = json.loads(record) if isinstance(record, str) else record
    text = (f"ran over every split: {found['files']} files, each listed once and in one split (a file in two splits "
            "is refused); identical bytes under two paths: ")
    if found.get("identical_pairs"):
        first = found["examples"][0]
        text += (f"**{found['identical_pairs']} pairs, {found['identical_across_splits']} across splits** (e.g. "
                 f"`{first[0]}` ({first[1]}) = `{first[2]}` ({first[3]}))")
    else:
        text += "none"
    skipped = ((json.loads(config) if isinstance(config, str) else config or {}).get("source") or {}).get("skipped")
    if skipped:
        text += "; files the reader did not use: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
    return text + "."
