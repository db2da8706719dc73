"""`make clean-demo` removes everything `make demo` writes, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_clean_demo_removes_what_demo_wrote(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    written = ["data/sample/CUB_200_2011/images.txt", "data/features/sample/train.h5",
               "data/features/sample/train.views.png", "runs/demo/20250101-000000-none/metrics.json",
               "data/models/random-resnet50v2-seed0/saved_model.pb"]  # the random backbone the demo saved
    kept = ["data/README.md", "data/features/train.h5", "data/models/random-resnet50v2-seed1/saved_model.pb"]
    for name in written + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    # the demo's study writes where clean-demo looks: its caches, its directory and the backbone it saves
    demo = subprocess.run(["make", "-n", "demo", "STAMP="], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "study studies/demo.toml" in demo
    spec = tomllib.loads((ROOT / "studies" / "demo.toml").read_text())
    assert (spec["out"], spec["extraction"]["features"]) == ("runs/demo", "data/features/sample")
    assert (spec["backbone"]["handle"], spec["backbone"]["model_cache"], spec["backbone"]["seed"]) == \
        ("random-resnet50v2", "data/models", 0)
    subprocess.run(["make", "clean-demo"], cwd=tmp_path, check=True, capture_output=True)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(["Makefile", *kept])
    assert not (tmp_path / "runs").exists()  # emptied parents go too
