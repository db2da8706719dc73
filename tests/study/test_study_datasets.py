"""A study over several datasets ([[datasets]]): one study per dataset in out/<label>, caches in
<features>/<label>, and one report with a column per dataset whose numbers are the datasets' own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.datasets import cache_source, load_dataset
from pipeline.datasets.synthetic import make_sample_layout
from pipeline.errors import PipelineError
from pipeline.schema import dataset_fingerprint
from study.spec import load_spec, load_specs

from tests.study.conftest import _write, spec_text
from tests.support.report import method_row


def two_dataset_spec(tmp_path: Path, cub_root: Path, folder_root: Path, **kwargs) -> Path:
    """The conftest spec with [dataset] replaced by a CUB sample and a folder-layout sample."""
    text = spec_text(cub_root, tmp_path / "f", tmp_path / "out", **kwargs)
    head, _, rest = text.partition("[dataset]\n")
    rest = rest.split("\n", 1)[1]  # the [dataset] table's root line
    datasets = (f'[[datasets]]\nlabel = "birds"\nroot = "{cub_root}"\n'
                f'[[datasets]]\nname = "folder"\nlabel = "mine"\nroot = "{folder_root}"\n')
    path = tmp_path / "two.toml"
    path.write_text(head + rest.replace("[backbone]\n", datasets + "[backbone]\n", 1))
    return path


def write_caches(spec) -> None:
    """Complete caches matching one dataset's part of the study (no TensorFlow)."""
    from study.plan.make import expected_config, likely_extraction_precision

    for split in ("train", "test"):
        data = load_dataset(spec.dataset, spec.data_root, split, **spec.dataset_options)
        config = {"format_version": 1, **expected_config(spec, split), "precision": likely_extraction_precision(spec.precision),
                  "preprocessing": "decode_rgb+resize_bilinear_antialias+scale_0_1",
                  "dataset": dataset_fingerprint(data.image_id, data.label, data.path)}
        if cache_source(data) is not None:
            config["source"] = cache_source(data)
        _write(spec.extraction.features / f"{split}.h5", config, data, 16, spec)


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    root = make_sample_layout("folder", tmp_path_factory.mktemp("folder"), classes=3, images_per_class=10, seed=5,
                              min_side=40, max_side=60)
    shutil.rmtree(root / "val")  # a study refuses a folder's val/ images (it draws validation from train/)
    return root


def test_each_dataset_gets_its_own_directory_caches_and_reader(tmp_path, study_root, folder_root):
    specs = load_specs(two_dataset_spec(tmp_path, study_root, folder_root))
    assert [(s.label, s.dataset) for s in specs] == [("birds", "cub"), ("mine", "folder")]
    assert [s.out for s in specs] == [tmp_path / "out" / "birds", tmp_path / "out" / "mine"]
    assert [s.extraction.features for s in specs] == [tmp_path / "f" / "birds", tmp_path / "f" / "mine"]
    assert specs[0].grid == specs[1].grid and specs[0].methods == specs[1].methods
    with pytest.raises(PipelineError, match="lists 2 datasets; expected one here"):
        load_spec(two_dataset_spec(tmp_path, study_root, folder_root))


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace('label = "mine"', 'label = "birds"'), "[[datasets]] 2 label: expected a distinct name"),
    (lambda t: t.replace('label = "mine"\n', 'label = "mine"\ncolour = 1\n'), "[datasets.mine] colour: unknown key"),
    (lambda t: t.replace("[[datasets]]\nlabel", "[dataset]\nroot = \"x\"\n[[datasets]]\nlabel", 1),
     "expected one or more [[datasets]] tables and no [dataset]"),
])
def test_bad_dataset_lists_are_one_line(tmp_path, study_root, folder_root, change, message):
    path = two_dataset_spec(tmp_path, study_root, folder_root)
    path.write_text(change(path.read_text()))
    with pytest.raises(PipelineError) as e:
        load_specs(path)
    assert message in str(e.value) and str(e.value).startswith(str(path)) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def two_study(tmp_path_factory, study_root, folder_root) -> tuple[Path, list]:
    """A finished two-dataset study at K = 2 and K = all (two seeds, a linear weight-decay grid): (out, specs)."""
    tmp_path = tmp_path_factory.mktemp("two")
    path = two_dataset_spec(tmp_path, study_root, folder_root, methods=("none", "linear", "pirl"), seeds=(0, 1),
                            ks=(2, "all"), grid="aux-weight = [0.1]\n[grid.linear]\nweight-decay = [1e-4, 1e-2]\n")
    specs = load_specs(path)
    for spec in specs:
        write_caches(spec)
    code = "import sys; from study.cli import run_study; run_study(sys.argv[1], None)"
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tmp_path / "out", specs


def table_cells(report: str) -> dict[tuple[str, str], list[str]]:
    """(K, method) -> the cross-dataset report's cells, a cell per dataset, as report.md prints them."""
    cells = {}
    for section in report.split("### K = ")[1:]:
        k = section.split(" ", 1)[0]
        for line in section.split("\n## ")[0].splitlines():
            if line.startswith("| ") and not line.startswith("| method |"):
                aux, *row = [c.strip() for c in line.strip("|").split("|")]
                cells[(k, aux)] = row
    return cells


def answer_rows(report: str) -> list[list[str]]:
    """The cells of report.md's first table (the answer), header first."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return [rows[0]] + rows[2:]


def test_the_report_answers_first_with_each_datasets_own_answer(two_study):
    """On top, one answer table with a block of rows per dataset: exactly the rows of that dataset's own answer."""
    out, specs = two_study
    report = (out / "report.md").read_text()
    assert report.index("UNTRAINED BACKBONE") < report.index("## Answer") < report.index("### K = 2")
    assert "SYNTHETIC SAMPLE: birds (cub), mine (folder) made by make-sample-dataset" in report
    header, *rows = answer_rows(report)
    assert header == ["dataset", "method (Δ against)", "K = 2", "K = all"]
    assert report.splitlines().index("| " + " | ".join(header) + " |") < 45
    # the rows each K used, from the runs: the CUB sample has 5 training images a class (1 to validation), the
    for spec, label, left in zip(specs, ("birds (cub)", "mine (folder)"), (4, 2)):  # folder sample 3 (1 to validation)
        own_header, *own = answer_rows((spec.out / "report.md").read_text())
        assert own_header[1:] == ["K = 2", f"K = all ({left})"]
        assert [r[1:] for r in rows if r[0] == label] == own
        assert [r[0] for r in own][:5] == ["chance (1 of 3 classes)", "**none (MLP)** (Δ vs linear)",
                                           "**linear** (reference)", "**pirl** (Δ vs none (MLP))",
                                           "rows per class: labelled + validation"]
    answer = report.split("## Answer")[1].split("\n## ")[0]
    assert sum(line.startswith("- birds (cub): **") for line in answer.splitlines()) == 3  # a sentence per method
    assert "**Caution.** **2 seeds** (fewer than 3)" in report and "## Glossary" in report


def test_the_report_has_a_column_per_dataset_with_each_datasets_own_numbers(two_study):
    out, specs = two_study
    report = (out / "report.md").read_text()
    assert report.index("UNTRAINED BACKBONE") < report.index("### K = 2") < report.index("### K = all")
    header = next(line for line in report.splitlines() if line.startswith("| method |"))
    assert header == "| method | birds (cub) | mine (folder) |"
    row = method_row(report.split("### K = all")[1], "pirl")
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    for spec, cell in zip(specs, cells):
        own = (spec.out / "report.md").read_text().split("### K = all")[1]
        own_row = method_row(own, "pirl")
        mean_std = own_row.split("|")[3].strip()  # the dataset's own report: "test top-1 % (mean ± std, n)"
        assert cell.startswith(mean_std) and "; vs none (MLP) " in cell
        assert own_row.split("|")[4].strip().removeprefix("vs none (MLP): ") in cell  # the same paired interval
    page = (out / "report.html").read_text()
    assert page.count("<table>") == page.count("<thead>") == 5  # the answer, a power table per dataset, a table per K
    assert '<a href="birds/report.md">' in page and '<meta name="viewport"' in page
    # the study's own loop trains the linear probe's weight-decay grid as one bank per seed and K (heads.training.bank)
    linear = sorted((specs[0].out / "sweep" / "runs").glob("linear_*/metrics.json"))
    assert len(linear) == 2 * 2 * 2 and all(json.loads(m.read_text())["timing"]["bank"]["heads"] == 2 for m in linear)
    assert np.isfinite(float(cells[0].split(" ")[0]))


def test_the_label_efficiency_figure_draws_the_answers_numbers(two_study):
    """label_efficiency.png beside report.md, linked there, embedded in report.html, captioned untrained; its panels
    (each dataset's own report's: study.report.figures) draw the answer's means and differences, a bar each."""
    import base64

    from heads.training.figures import pyplot
    from pipeline.files import stale_temporaries
    from study.report.compare import FIGURE
    from study.report.results import collect
    from study.report.figures import accuracy_panel, difference_panel

    out, specs = two_study
    figure = out / FIGURE
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not stale_temporaries(figure)
    report = (out / "report.md").read_text()
    link = next(line for line in report.splitlines() if line.startswith("!["))
    assert link.endswith(f"]({FIGURE})") and "untrained backbone" in link
    caption = report.split(link, 1)[1].strip().split("\n")[0]
    assert caption.startswith("**UNTRAINED BACKBONE: `random-resnet50v2` has random weights")
    assert base64.b64encode(figure.read_bytes()).decode() in (out / "report.html").read_text()

    _header, *rows = answer_rows(report)
    plt = pyplot()
    for spec, label in zip(specs, ("birds (cub)", "mine (folder)")):
        cells = {r[1].split("**")[1]: r[2:] for r in rows if r[0] == label and r[1].startswith("**")}
        fig, (top, bottom) = plt.subplots(2, 1)
        accuracy_panel(top, r := collect(spec))
        difference_panel(bottom, r)
        means = {c.get_label(): [f"{y:.2f}" for y in c.lines[0].get_ydata()] for c in top.containers}
        assert means == {aux: [c.split(" ± ")[0] for c in cs] for aux, cs in cells.items()}
        diffs = {c.get_label(): [f"{y:+.2f}" for y in c.lines[0].get_ydata()] for c in bottom.containers}
        shown = {f"{aux} − {'none (MLP)' if aux == 'pirl' else 'linear'}": [c.split("Δ ")[1].split(" ")[0].strip("*")
                                                                     for c in cs if "Δ " in c and "not an effect" not in c]
                 for aux, cs in cells.items() if aux != "linear"}
        assert diffs == {k: v for k, v in shown.items() if v}
        assert any(ln.get_linestyle() == "--" and ln.get_ydata()[0] == pytest.approx(100 / 3) for ln in top.lines)  # chance
        plt.close(fig)
