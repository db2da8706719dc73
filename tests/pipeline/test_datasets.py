"""Each dataset reader on a generated copy of its layout: counts per split, 0-based labels, classes,
disjoint splits, sorted ids; the published split sizes on metadata-only copies; one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipeline.datasets import DATASETS, fetch_dataset, get_reader, load_dataset
from pipeline.errors import PipelineError
from pipeline.sample import make_sample_dataset

C, M = 3, 4  # classes x images per class
LAYOUTS = ("cub", "aircraft", "cars", "dogs", "flowers102", "nabirds", "folder")
# per split, as the generator makes them: half of each class test; the rest train, or train + val
COUNTS = {"train": C * 2, "test": C * 2}
COUNTS_3 = {"train": C * 1, "val": C * 1, "trainval": C * 2, "test": C * 2}


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """{layout: root} of small generated copies, metadata in shuffled order."""
    out = tmp_path_factory.mktemp("layouts")
    return {name: make_sample_dataset(out, C, M, seed=2, min_side=32, max_side=48, shuffle_metadata=True, layout=name)
            for name in LAYOUTS}


def _counts(name):
    counts = COUNTS_3 if "val" in DATASETS[name].splits else COUNTS
    return {s: n for s, n in counts.items() if s in DATASETS[name].splits}


@pytest.mark.parametrize("name", LAYOUTS)
def test_reader_on_generated_copy(copies, name):
    everything = load_dataset(name, copies[name], "all")
    assert len(everything) == C * M and len(everything.class_names) == C
    assert sorted(set(everything.label.tolist())) == list(range(C))  # 0-based, every class present
    seen = {}
    for split, n in _counts(name).items():
        data = load_dataset(name, copies[name], split)
        assert len(data) == n, split
        ids = data.image_id.tolist()
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert data.class_names == everything.class_names and data.label.min() >= 0 and data.label.max() < C
        assert all(data.image_file(i).is_file() for i in range(len(data)))
        wanted = {"trainval": {"train", "val"}}.get(split, {split})
        assert set(data.official_split) == wanted
        # a row's label is the same whichever split it is read from
        where = {i: k for k, i in enumerate(everything.image_id.tolist())}
        assert [int(everything.label[where[i]]) for i in ids] == data.label.tolist()
        seen[split] = set(ids)
    finals = [s for s in seen if s != "trainval"]
    for a in finals:
        for b in finals:
            assert a == b or not seen[a] & seen[b], (a, b)
    assert set().union(*(seen[s] for s in finals)) == set(everything.image_id.tolist())


def test_labels_follow_the_class_folder(copies):
    """Classes agree with what the generator drew: the class folder of each image names its class."""
    dogs = load_dataset("dogs", copies["dogs"], "all")
    assert all(dogs.path[i].split("/")[0] == dogs.class_names[dogs.label[i]] for i in range(len(dogs)))
    folder = load_dataset("folder", copies["folder"], "all")
    assert all(folder.path[i].split("/")[1] == folder.class_names[folder.label[i]] for i in range(len(folder)))
    nab = load_dataset("nabirds", copies["nabirds"], "all")
    assert nab.class_names == [f"Sample bird {c + 1} (Adult)" for c in range(C)]  # inner nodes dropped, ids remapped


def test_folder_csv_equals_the_tree(copies):
    root = copies["folder"]
    for split in ("train", "val", "test", "all"):
        tree, table = load_dataset("folder", root, split), load_dataset("folder", root, split, csv="labels.csv")
        assert tree.image_id.tolist() == table.image_id.tolist() and tree.path == table.path
        assert tree.label.tolist() == table.label.tolist() and tree.class_names == table.class_names


def test_aircraft_levels(copies):
    root = copies["aircraft"]
    variant = load_dataset("aircraft", root, "trainval")
    family = load_dataset("aircraft", root, "trainval", level="family")
    maker = load_dataset("aircraft", root, "trainval", level="manufacturer")
    assert variant.image_id.tolist() == family.image_id.tolist() == maker.image_id.tolist()
    assert (family.label == variant.label // 2).all() and (maker.label == variant.label // 4).all()
    assert family.split_definition() == {"dataset": "aircraft", "split": "trainval", "level": "family"}
    assert variant.class_names[0] == "Sample/Variant 1-200"  # a name with '/' and spaces survives
    assert (variant.bbox[:, 2:] > 0).all()


def test_official_validation_split_is_exposed():
    assert get_reader("aircraft").official_validation == "val"
    assert get_reader("flowers102").official_validation == "val"
    assert get_reader("cub").official_validation is None and get_reader("cars").official_validation is None


def test_cub_through_the_registry_equals_load_cub(sample_root):
    from pipeline.cub import load_cub

    a, b = load_dataset("cub", sample_root, "train"), load_cub(sample_root, "train")
    assert a.image_id.tolist() == b.image_id.tolist() and a.path == b.path and (a.bbox == b.bbox).all()
    assert a.split_definition() == {"dataset": "cub", "split": "train"}


@pytest.mark.parametrize("call, message", [
    (lambda root: load_dataset("imagenet", root, "train"), "--dataset: expected one of cub, aircraft"),
    (lambda root: load_dataset("aircraft", root, "train", level="model"), "expected one of variant, family, manufacturer"),
    (lambda root: load_dataset("cars", root, "train", level="family"), "cars: no option 'level'"),
    (lambda root: load_dataset("cars", root, "val"), "--split: expected one of train, test, all"),
])
def test_bad_names_and_options(copies, call, message):
    with pytest.raises(PipelineError, match=message):
        call(copies["cars"])


@pytest.mark.parametrize("name", ["cars", "nabirds"])
def test_download_explains_where_to_place_the_files(tmp_path, name):
    with pytest.raises(PipelineError) as e:
        fetch_dataset(name, tmp_path / name)
    message = str(e.value)
    assert "\n" not in message and str(tmp_path / name) in message and "place" in message


# ---------- one-line errors for each damaged file ----------

def _rewrite(path, edit):
    lines = path.read_text().split("\n")
    path.write_text("\n".join(edit(lines)))


def _savemat(path, **variables):
    from scipy.io import savemat

    savemat(path, variables)


def _drop_line_with_id(path, key):
    _rewrite(path, lambda lines: [x for x in lines if not x.startswith(f"{key} ")])


def _first_id(path):
    return path.read_text().split()[0]


DAMAGE = {
    # (layout, split): [(damage(root), substrings of the message)]
    "aircraft": [
        (lambda r: (r / "data/images_variant_test.txt").unlink(), ["images_variant_test.txt: missing FGVC-Aircraft"]),
        (lambda r: _rewrite(r / "data/images_variant_train.txt", lambda x: x[:1] + ["12ab Boeing"] + x[1:]),
         ["images_variant_train.txt:2: expected", "12ab Boeing"]),
        (lambda r: _rewrite(r / "data/images_variant_val.txt", lambda x: [x[0].split()[0] + " Nonexistent 9"] + x[1:]),
         ["images_variant_val.txt: image", "'Nonexistent 9', not in variants.txt"]),
        (lambda r: _drop_line_with_id(r / "data/images_box.txt", _first_id(r / "data/images_box.txt")),
         ["images_box.txt: image", "is absent"]),
        (lambda r: _drop_line_with_id(r / "data/images_variant_trainval.txt",
                                      _first_id(r / "data/images_variant_train.txt")),
         ["images_variant_trainval.txt", "is not listed in"]),
        (lambda r: next((r / "data/images").iterdir()).unlink(), ["does not exist"]),
    ],
    "cars": [
        (lambda r: (r / "devkit/cars_meta.mat").unlink(), ["cars_meta.mat: missing Stanford Cars metadata file"]),
        (lambda r: (r / "devkit/cars_train_annos.mat").write_bytes(b"not a mat file" * 20),
         ["cars_train_annos.mat: not a readable MATLAB .mat file"]),
        (lambda r: _savemat(r / "cars_test_annos_withlabels.mat", other=np.zeros(2)),
         ["cars_test_annos_withlabels.mat: no variable 'annotations' (found other)"]),
        (lambda r: _savemat(r / "devkit/cars_train_annos.mat", annotations=np.zeros(
            (1, 1), dtype=[("bbox_x1", object), ("class", object), ("fname", object)])),
         ["cars_train_annos.mat: annotation 1 has no field 'bbox_y1'"]),
        (lambda r: (r / "cars_train/00002.jpg").unlink(), ["cars_train/00002.jpg: image", "does not exist"]),
    ],
    "dogs": [
        (lambda r: (r / "test_list.mat").unlink(), ["test_list.mat: missing Stanford Dogs metadata file"]),
        (lambda r: _savemat(r / "train_list.mat", file_list=np.array([["a/b.jpg"]], dtype=object), labels=np.array([[1.0], [2.0]])),
         ["train_list.mat: 1 entries in file_list but 2 in labels"]),
        (lambda r: _savemat(r / "train_list.mat", file_list=np.array([["x/b.jpg"]], dtype=object), labels=np.array([[1.5]])),
         ["train_list.mat: entry 1 has labels 1.5, expected an integer"]),
        (lambda r: shutil.rmtree(next((r / "Images").iterdir())), ["does not exist"]),
    ],
    "flowers102": [
        (lambda r: (r / "setid.mat").unlink(), ["setid.mat: missing Flowers-102 metadata file"]),
        (lambda r: _savemat(r / "setid.mat", trnid=np.array([[1.0]]), valid=np.array([[1.0]]), tstid=np.array([[2.0]])),
         ["setid.mat: image 1 is in valid and in trnid"]),
        (lambda r: _savemat(r / "setid.mat", trnid=np.array([[1.0, 99.0]]), valid=np.array([[2.0]]), tstid=np.array([[3.0]])),
         ["setid.mat: trnid entry 2 is image 99, but imagelabels.mat has 12 images"]),
        (lambda r: (r / "jpg/image_00001.jpg").unlink(), ["image_00001.jpg: image 1 listed in imagelabels.mat does not exist"]),
    ],
    "nabirds": [
        (lambda r: (r / "bounding_boxes.txt").unlink(), ["bounding_boxes.txt: missing NABirds metadata file"]),
        (lambda r: _rewrite(r / "image_class_labels.txt", lambda x: x[:2] + [x[2].split()[0] + " sparrow"] + x[3:]),
         ["image_class_labels.txt:3: expected '<image_id> <class_id>'", "sparrow"]),
        (lambda r: _drop_line_with_id(r / "train_test_split.txt", _first_id(r / "images.txt")),
         ["train_test_split.txt: image_id", "from images.txt is absent"]),
        (lambda r: _rewrite(r / "image_class_labels.txt", lambda x: [x[0].split()[0] + " 7777"] + x[1:]),
         ["has class_id 7777, not in classes.txt"]),
    ],
    "folder": [
        (lambda r: shutil.rmtree(r / "val") or shutil.rmtree(r / "train") or shutil.rmtree(r / "test"),
         ["no images in", "<train|val|test>/<class>/"]),
    ],
}
CSV_DAMAGE = [
    (lambda f: f.write_text("file,class,split\na.jpg,x,train\n"), ["labels.csv:1: expected the header 'path,label,split'"]),
    (lambda f: _rewrite(f, lambda x: x[:3] + ["only,two"] + x[3:]), ["labels.csv:4: expected 'path,label,split'", "only,two"]),
    (lambda f: _rewrite(f, lambda x: x[:2] + ["a.jpg,c,holdout"] + x[2:]), ["labels.csv:3: split 'holdout'"]),
    (lambda f: _rewrite(f, lambda x: x + [x[1]]), ["already listed on line 2"]),
    (lambda f: f.unlink(), ["labels.csv: missing folder CSV file"]),
]


@pytest.mark.parametrize("name, damage, expected",
                         [(n, d, e) for n, cases in DAMAGE.items() for d, e in cases],
                         ids=[f"{n}-{k}" for n, cases in DAMAGE.items() for k in range(len(cases))])
def test_damaged_file_is_one_line(copies, tmp_path, name, damage, expected):
    root = tmp_path / copies[name].name
    shutil.copytree(copies[name], root)
    damage(root)
    with pytest.raises(PipelineError) as e:
        load_dataset(name, root, "all")
    message = str(e.value)
    assert "\n" not in message and all(s in message for s in expected), message


@pytest.mark.parametrize("damage, expected", CSV_DAMAGE, ids=[str(k) for k in range(len(CSV_DAMAGE))])
def test_damaged_csv_is_one_line(copies, tmp_path, damage, expected):
    root = tmp_path / "folder"
    shutil.copytree(copies["folder"], root)
    damage(root / "labels.csv")
    with pytest.raises(PipelineError) as e:
        load_dataset("folder", root, "all", csv="labels.csv")
    message = str(e.value)
    assert "\n" not in message and all(s in message for s in expected), message


def test_make_sample_dataset_layout_option(tmp_path):
    from click.testing import CliRunner

    from extract.sample_cli import main

    result = CliRunner().invoke(main, ["--out", str(tmp_path), "--classes", "2", "--images-per-class", "3",
                                       "--layout", "flowers102"])
    assert result.exit_code == 0, result.output
    assert len(load_dataset("flowers102", tmp_path / "flowers-102", "val")) == 2
    result = CliRunner().invoke(main, ["--out", str(tmp_path), "--layout", "imagenet"])
    assert result.exit_code == 2 and "imagenet" in result.output


def test_three_way_layout_needs_three_images_per_class(tmp_path):
    with pytest.raises(PipelineError, match="at least 3 images per class"):
        make_sample_dataset(tmp_path, 2, 2, layout="aircraft")
