"""--download: checksum before extraction, atomic rename, no-op when present; a local server stands in for Caltech."""

from __future__ import annotations

import hashlib
import http.server
import io
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


@pytest.fixture
def serve():
    """serve(handler_class) -> base URL on 127.0.0.1; servers are shut down after the test."""
    servers = []

    def start(handler):
        handler.log_message = lambda *a: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_cut_short_is_reported_as_short(serve, tmp_path):
    class CutShort(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 40000)  # then the connection closes
            self.close_connection = True

    url = serve(CutShort) + "/CUB_200_2011.tgz"
    with pytest.raises(PipelineError, match=r"short download: the connection ended after 40,000 of the 100,000 bytes"):
        download_cub(tmp_path / "CUB_200_2011", url=url, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unsafe_archive_member_is_refused_and_leaves_no_part_file(serve, tmp_path, sample_root):
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        tar.add(sample_root, arcname="CUB_200_2011")
        evil = tarfile.TarInfo("../outside.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    body = payload.getvalue()

    class Archive(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    url = serve(Archive) + "/CUB_200_2011.tgz"
    target = tmp_path / "data"
    with pytest.raises(PipelineError, match=r"archive refused, unsafe member: .*outside\.txt"):
        download_cub(target / "CUB_200_2011", url=url, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert list(target.iterdir()) == [] and not (tmp_path / "outside.txt").exists()
