"""What several benchmarks print: the CPU they ran on, and how close two caches' features are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks use the tests' synthetic cache writer (tests.support.synthetic)
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    """'AMD EPYC (2 cores; avx512_bf16)': lscpu's model name, the core count and the native bf16 flags."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"unknown CPU ({os.cpu_count()} cores)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    extra = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{fields.get('Model name', '?').strip()} ({os.cpu_count()} cores; {', '.join(extra) or 'no native bf16'})"


def feature_cosines(a_path: Path, b_path: Path) -> np.ndarray:
    """Cosine between matching feature vectors (every kind, every view) of two caches of the same rows."""
    out = []
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        for kind in a["features"]:
            x = a[f"features/{kind}"][...].reshape(-1, a[f"features/{kind}"].shape[-1]).astype(np.float64)
            y = b[f"features/{kind}"][...].reshape(x.shape).astype(np.float64)
            out.append((x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)))
    return np.concatenate(out)
