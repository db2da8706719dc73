"""Download CUB-200-2011: stream to a .part file, check its length against Content-Length and its MD5,
extract to a temporary directory, rename into place. A no-op when the dataset is already there.
The .part file never outlives the call, whatever the outcome."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .errors import PipelineError

CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
CUB_BYTES = 1_150_585_339


def download_cub(root: str | Path, url: str = CUB_URL, md5: str = CUB_MD5, progress: bool = True) -> Path:
    """Make `root` (…/CUB_200_2011) hold the dataset; return it. Raises PipelineError on failure."""
    root = Path(root)
    if (root / "images.txt").is_file():
        return root
    if root.exists() and any(root.iterdir()):
        raise PipelineError(f"{root}: exists but holds no images.txt; move it away before --download")
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    part = parent / "CUB_200_2011.tgz.part"
    digest = hashlib.md5()
    received = total = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            bar = _bar(total, progress)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            bar.close()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        part.unlink(missing_ok=True)
        got = f" after {received:,} of {total:,} bytes" if total and received else ""
        raise PipelineError(f"downloading {url} failed{got}: {e}; partial download removed") from None
    if total and received != total:
        part.unlink(missing_ok=True)
        raise PipelineError(f"{url}: short download: the connection ended after {received:,} of the {total:,} bytes "
                            "the server announced (Content-Length); partial download removed, run --download again")
    if digest.hexdigest() != md5:
        part.unlink(missing_ok=True)
        raise PipelineError(f"{url}: MD5 {digest.hexdigest()} does not match the expected {md5}; partial download removed")
    staging = Path(tempfile.mkdtemp(prefix=".cub-extract-", dir=parent))
    try:
        with tarfile.open(part, "r:gz") as tar:
            tar.extractall(staging, filter="data")
        found = staging / "CUB_200_2011"
        if not (found / "images.txt").is_file():
            raise PipelineError(f"{url}: archive holds no CUB_200_2011/images.txt; download removed")
        if root.exists():
            root.rmdir()
        found.rename(root)
    except tarfile.FilterError as e:  # a member that would land outside the target, a device file...
        raise PipelineError(f"{url}: archive refused, unsafe member: {e}; download removed") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise PipelineError(f"{url}: extracting the archive failed: {e}; download removed") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        part.unlink(missing_ok=True)  # kept nowhere: a rerun downloads again, and 1.1 GB is not left behind
    return root


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total or None, unit="B", unit_scale=True, desc="CUB_200_2011.tgz",
                disable=None if enabled else True)  # None: only on a terminal
