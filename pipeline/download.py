"""Verified, safe downloads of public datasets: each file is streamed to a .part file, its length checked
against Content-Length and its MD5 / SHA-256 against the published value BEFORE anything is extracted;
archives are extracted with tarfile's "data" filter into a temporary directory that is renamed into place.
A no-op when the dataset is already there. No .part file or staging directory outlives the call."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import PipelineError

CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
CUB_BYTES = 1_150_585_339


@dataclass(frozen=True)
class Resource:
    """One published file: where it is, what it must hash to, whether it is an archive to extract."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None  # published byte count (documentation; the server's Content-Length is checked)
    extract: bool = True  # a tar archive (extracted into the dataset) or a plain file (copied in as is)


def download_dataset(root: str | Path, resources: list[Resource], marker: str, top: str | None = None,
                     progress: bool = True) -> Path:
    """Make `root` hold the dataset (the directory where `marker` lies); return it.

    Every resource is downloaded and verified, then extracted (or moved) into one staging directory;
    `staging/top` (or the staging directory itself) is checked for `marker` and renamed to `root`.
    """
    root = Path(root)
    if (root / marker).is_file():
        return root
    if root.exists() and any(root.iterdir()):
        raise PipelineError(f"{root}: exists but holds no {marker}; move it away before --download")
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-extract-", dir=parent))
    try:
        for resource in resources:
            part = parent / f"{resource.filename}.part"
            try:
                _fetch(resource, part, progress)
                _unpack(resource, part, staging)
            finally:
                part.unlink(missing_ok=True)  # kept nowhere: a rerun downloads again, nothing large is left behind
        found = staging / top if top else staging
        if not (found / marker).is_file():
            raise PipelineError(f"{resources[0].url}: archive holds no {top + '/' if top else ''}{marker}; download removed")
        if root.exists():
            root.rmdir()
        found.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _fetch(resource: Resource, part: Path, progress: bool) -> None:
    """Stream `resource` to `part`, checking its length and checksums; PipelineError on any failure."""
    url = resource.url
    digests = {name: hashlib.new(name) for name, want in (("md5", resource.md5), ("sha256", resource.sha256)) if want}
    if not digests:
        raise PipelineError(f"{url}: no published checksum to verify the download against")
    received = total = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            bar = _bar(total, progress, resource.filename)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                for digest in digests.values():
                    digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            bar.close()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        got = f" after {received:,} of {total:,} bytes" if total and received else ""
        raise PipelineError(f"downloading {url} failed{got}: {e}; partial download removed") from None
    if total and received != total:
        raise PipelineError(f"{url}: short download: the connection ended after {received:,} of the {total:,} bytes "
                            "the server announced (Content-Length); partial download removed, run --download again")
    for name, digest in digests.items():
        want = resource.md5 if name == "md5" else resource.sha256
        if digest.hexdigest() != want:
            label = "MD5" if name == "md5" else "SHA-256"
            raise PipelineError(f"{url}: {label} {digest.hexdigest()} does not match the expected {want}; "
                                "partial download removed")


def _unpack(resource: Resource, part: Path, staging: Path) -> None:
    """Extract a verified archive into `staging` (unsafe members refused), or move a plain file there."""
    if not resource.extract:
        part.rename(staging / resource.filename)
        return
    try:
        with tarfile.open(part, "r:*") as tar:
            tar.extractall(staging, filter="data")
    except tarfile.FilterError as e:  # a member that would land outside the target, a device file...
        raise PipelineError(f"{resource.url}: archive refused, unsafe member: {e}; download removed") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise PipelineError(f"{resource.url}: extracting the archive failed: {e}; download removed") from None


def download_cub(root: str | Path, url: str = CUB_URL, md5: str = CUB_MD5, progress: bool = True) -> Path:
    """Make `root` (…/CUB_200_2011) hold the dataset; return it. Raises PipelineError on failure."""
    resource = Resource(url, "CUB_200_2011.tgz", md5=md5, size=CUB_BYTES)
    return download_dataset(root, [resource], marker="images.txt", top="CUB_200_2011", progress=progress)


def _bar(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total or None, unit="B", unit_scale=True, desc=desc,
                disable=None if enabled else True)  # None: only on a terminal
