"""The readers on metadata-only copies with the PUBLISHED sizes (images not checked), and the downloads
of Aircraft, Dogs and Flowers-102 through the verified, safe-extract path against a local server."""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading
from functools import partial

import numpy as np
import pytest

from pipeline.datasets import aircraft, dogs, fetch_dataset, flowers102, load_dataset
from pipeline.errors import PipelineError
from pipeline.sample import make_sample_dataset


def _cells(values, shape):
    cells = np.empty(len(values), dtype=object)
    cells[:] = values
    return cells.reshape(shape)


def test_aircraft_published_sizes(tmp_path):
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    names = [f"Variant {c}" for c in range(100)]
    (data / "variants.txt").write_text("\n".join(names) + "\n")
    ids = [f"{i:07d}" for i in range(10_000)]
    split = {"train": ids[:3334], "val": ids[3334:6667], "test": ids[6667:]}
    split["trainval"] = split["train"] + split["val"]
    for s, members in split.items():
        (data / f"images_variant_{s}.txt").write_text("".join(f"{k} {names[int(k) % 100]}\n" for k in members))
    (data / "images_box.txt").write_text("".join(f"{k} 1 1 20 10\n" for k in ids))
    sizes = {s: len(load_dataset("aircraft", data.parent, s, check_images=False)) for s in aircraft.SPLITS}
    assert sizes == {"train": 3334, "val": 3333, "trainval": 6667, "test": 3333, "all": 10_000}
    assert len(load_dataset("aircraft", data.parent, "test", check_images=False).class_names) == 100


def test_cars_published_sizes(tmp_path):
    from scipy.io import savemat

    root = tmp_path / "stanford_cars"
    (root / "devkit").mkdir(parents=True)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": _cells([f"Car {c}" for c in range(196)], (1, 196))})
    dtype = [(f, object) for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    for n, mat in ((8144, root / "devkit" / "cars_train_annos.mat"), (8041, root / "cars_test_annos_withlabels.mat")):
        records = np.zeros((1, n), dtype=dtype)
        for k in range(n):
            records[0, k] = (1, 2, 30, 40, k % 196 + 1, f"{k + 1:05d}.jpg")
        savemat(mat, {"annotations": records})
    train, test = (load_dataset("cars", root, s, check_images=False) for s in ("train", "test"))
    assert (len(train), len(test), len(train.class_names)) == (8144, 8041, 196)
    assert not set(train.image_id.tolist()) & set(test.image_id.tolist())


def test_dogs_published_sizes(tmp_path):
    from scipy.io import savemat

    root = tmp_path / "StanfordDogs"
    root.mkdir()
    for split, n in (("train", 12_000), ("test", 8_580)):
        files = [f"n{c:08d}-Breed_{c}/{split}_{k}.jpg" for k in range(n) for c in [k % 120]]
        savemat(root / f"{split}_list.mat", {"file_list": _cells(files, (n, 1)),
                                             "labels": np.asarray([[k % 120 + 1.0] for k in range(n)])})
    train, test = (load_dataset("dogs", root, s, check_images=False) for s in ("train", "test"))
    assert (len(train), len(test), len(train.class_names)) == (12_000, 8_580, 120)


def test_flowers102_published_sizes(tmp_path):
    from scipy.io import savemat

    root = tmp_path / "flowers-102"
    root.mkdir()
    order = np.random.default_rng(0).permutation(8189) + 1.0
    savemat(root / "imagelabels.mat", {"labels": (np.arange(8189) % 102 + 1.0)[None, :]})
    savemat(root / "setid.mat", {"trnid": order[None, :1020], "valid": order[None, 1020:2040], "tstid": order[None, 2040:]})
    sizes = {s: len(load_dataset("flowers102", root, s, check_images=False)) for s in flowers102.SPLITS}
    assert sizes == {"train": 1020, "val": 1020, "trainval": 2040, "test": 6149, "all": 8189}
    assert load_dataset("flowers102", root, "train", check_images=False).label.min() == 0


# ---------- downloads ----------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(directory, base URL) of a local HTTP server on 127.0.0.1."""
    directory = tmp_path_factory.mktemp("site")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield directory, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _tar(path, members):
    with tarfile.open(path, "w:gz" if path.suffix in (".tgz", ".gz") else "w") as tar:
        for source, arcname in members:
            tar.add(source, arcname=arcname)
    return path


def _sums(path):
    body = path.read_bytes()
    return hashlib.md5(body).hexdigest(), hashlib.sha256(body).hexdigest(), len(body)


def test_aircraft_download(site, tmp_path, monkeypatch):
    directory, base = site
    copy = make_sample_dataset(tmp_path / "src", 3, 4, seed=3, min_side=32, max_side=40, layout="aircraft")
    archive = _tar(directory / "fgvc-aircraft-2013b.tar.gz", [(copy, "fgvc-aircraft-2013b")])
    monkeypatch.setattr(aircraft, "ARCHIVE_URL", base + archive.name)
    monkeypatch.setattr(aircraft, "ARCHIVE_SHA256", _sums(archive)[1])
    root = fetch_dataset("aircraft", tmp_path / "data" / "fgvc-aircraft-2013b", progress=False)
    assert load_dataset("aircraft", root, "all").image_id.tolist() == load_dataset("aircraft", copy, "all").image_id.tolist()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["fgvc-aircraft-2013b"]  # no .part, no staging


def _dogs_site(directory, tmp_path):
    copy = make_sample_dataset(tmp_path / "src", 3, 4, seed=3, min_side=32, max_side=40, layout="dogs")
    (tmp_path / "Annotation").mkdir()
    (tmp_path / "Annotation" / "README").write_text("boxes\n")
    lists = [(copy / f"{s}_list.mat", f"{s}_list.mat") for s in ("train", "test", "file")]
    archives = [_tar(directory / "images.tar", [(copy / "Images", "Images")]), _tar(directory / "lists.tar", lists),
                _tar(directory / "annotation.tar", [(tmp_path / "Annotation", "Annotation")])]
    return copy, tuple((a.name, _sums(a)[2], _sums(a)[1]) for a in archives)


def test_dogs_download(site, tmp_path, monkeypatch):
    directory, base = site
    copy, archives = _dogs_site(directory, tmp_path)
    monkeypatch.setattr(dogs, "BASE_URL", base)
    monkeypatch.setattr(dogs, "ARCHIVES", archives)
    root = fetch_dataset("dogs", tmp_path / "data" / "StanfordDogs", progress=False)
    assert load_dataset("dogs", root, "test").path == load_dataset("dogs", copy, "test").path
    assert (root / "Annotation" / "README").is_file()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["StanfordDogs"]


def test_dogs_download_with_a_wrong_sha256_leaves_nothing(site, tmp_path, monkeypatch):
    directory, base = site
    _, archives = _dogs_site(directory, tmp_path)
    monkeypatch.setattr(dogs, "BASE_URL", base)
    monkeypatch.setattr(dogs, "ARCHIVES", (archives[0], (archives[1][0], archives[1][1], "0" * 64), archives[2]))
    with pytest.raises(PipelineError, match=r"lists\.tar: SHA-256 [0-9a-f]{64} does not match the expected 0{64}"):
        fetch_dataset("dogs", tmp_path / "data" / "StanfordDogs", progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_flowers102_download(site, tmp_path, monkeypatch):
    directory, base = site
    copy = make_sample_dataset(tmp_path / "src", 3, 4, seed=3, min_side=32, max_side=40, layout="flowers102")
    files = [_tar(directory / "102flowers.tgz", [(copy / "jpg", "jpg")])]
    for name in ("imagelabels.mat", "setid.mat"):
        (directory / name).write_bytes((copy / name).read_bytes())
        files.append(directory / name)
    monkeypatch.setattr(flowers102, "BASE_URL", base)
    monkeypatch.setattr(flowers102, "FILES", tuple((f.name, _sums(f)[2], _sums(f)[0], _sums(f)[1]) for f in files))
    root = fetch_dataset("flowers102", tmp_path / "data" / "flowers-102", progress=False)
    assert load_dataset("flowers102", root, "val").image_id.tolist() == load_dataset("flowers102", copy, "val").image_id.tolist()
    # already there: a no-op that does not contact the server
    monkeypatch.setattr(flowers102, "BASE_URL", "http://127.0.0.1:9/")
    assert fetch_dataset("flowers102", root, progress=False) == root
