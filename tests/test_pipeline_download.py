"""--download: checksum before extraction, atomic rename, no-op when present; a local server stands in for Caltech."""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading
from functools import partial

import pytest

from pipeline.cub import load_cub
from pipeline.download import download_cub
from pipeline.errors import PipelineError


@pytest.fixture(scope="module")
def served_archive(sample_root, tmp_path_factory):
    """CUB_200_2011.tgz of the sample dataset on http://127.0.0.1:<port>/."""
    site = tmp_path_factory.mktemp("site")
    archive = site / "CUB_200_2011.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(sample_root, arcname="CUB_200_2011")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/CUB_200_2011.tgz", hashlib.md5(archive.read_bytes()).hexdigest()
    server.shutdown()


def test_download_verifies_and_extracts(served_archive, tmp_path, sample_root):
    url, md5 = served_archive
    root = download_cub(tmp_path / "CUB_200_2011", url=url, md5=md5, progress=False)
    assert load_cub(root, "all").image_id.tolist() == load_cub(sample_root, "all").image_id.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CUB_200_2011"]  # no .part, no staging dir left
    # already there: a no-op that does not even contact the server
    assert download_cub(root, url="http://127.0.0.1:9/unreachable", md5="0" * 32, progress=False) == root


def test_wrong_checksum_removes_partial_download(served_archive, tmp_path):
    url, _ = served_archive
    with pytest.raises(PipelineError, match="MD5 .* does not match"):
        download_cub(tmp_path / "CUB_200_2011", url=url, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_url_is_a_clear_error(tmp_path, served_archive):
    url, md5 = served_archive
    with pytest.raises(PipelineError, match="downloading .* failed"):
        download_cub(tmp_path / "CUB_200_2011", url=url + ".missing", md5=md5, progress=False)
    assert list(tmp_path.iterdir()) == []
