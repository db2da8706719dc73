"""The docs say what the code does: generated option tables match the commands, the schema page matches what
the cache writer writes, and the README stays a short guide whose links resolve."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SCHEMA = DOCS / "cache-schema.md"
REGENERATE = "run `python docs/generate.py` (or `make docs`)"


def load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generate():
    return load_generator()


MODULES_BLOCK = re.compile(r"(<!-- generated: modules -->\n).*?(<!-- end generated -->)", re.S)


def without_module_map(text: str) -> str:
    """The code map is checked by test_code_map_lists_only_existing_modules: a new module need not regenerate it."""
    return MODULES_BLOCK.sub(r"\1\2", text)


def test_generated_blocks_match_the_code(generate):
    for path, expected in generate.generated().items():
        current, expected = without_module_map(path.read_text()), without_module_map(expected)
        if current != expected:
            import difflib

            diff = "".join(list(difflib.unified_diff(current.splitlines(True), expected.splitlines(True),
                                                     str(path.relative_to(ROOT)), "generated"))[:60])
            pytest.fail(f"{path.relative_to(ROOT)} differs from the code: {REGENERATE}\n{diff}")


def test_code_map_lists_only_existing_modules():
    text = (DOCS / "code-map.md").read_text()
    block = MODULES_BLOCK.search(text)
    assert block, "docs/code-map.md has no generated modules block"
    listed = re.findall(r"^\| `([^`]+\.py)` \|", block[0], re.M)
    assert listed, "the code map lists no module"
    gone = [m for m in listed if not (ROOT / m).is_file()]
    assert not gone, f"docs/code-map.md lists modules that no longer exist {gone}: {REGENERATE}"


def test_every_click_console_script_has_an_options_table(generate):
    found = generate.commands()
    assert {"extract-features", "train-heads", "sweep-heads", "evaluate-heads", "merge-caches"} <= set(found)
    text = (DOCS / "commands.md").read_text()
    named = set(generate.blocks(text))
    assert {f"options {c}" for c in found} <= named, f"a command has no table in docs/commands.md: {REGENERATE}"
    stale = {n for n in named if generate.render(n, found) is None}
    assert not stale, f"docs/commands.md has tables of commands that no longer exist: {sorted(stale)}"


def test_every_option_of_every_command_is_in_its_table(generate):
    """Independent of the rendering: each visible flag of each command appears in that command's block."""
    import click

    text = (DOCS / "commands.md").read_text()
    bodies = {m["name"]: m[0] for m in generate.BLOCK.finditer(text)}
    for name, command in generate.commands().items():
        body = bodies[f"options {name}"]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert f"`{param.opts[0]}" in body, f"{name} {param.opts[0]} missing from docs/commands.md: {REGENERATE}"


def test_generating_the_docs_does_not_import_tensorflow():
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('g', 'docs/generate.py'); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); m.generated(); "
            "sys.exit(3 if 'tensorflow' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 3, "docs/generate.py imported TensorFlow"
    assert result.returncode == 0, result.stderr[-2000:]


# --- the schema page against the writer -------------------------------------------------------------------------

def schema_tables() -> dict[str, dict[str, str]]:
    """{'dataset' | 'attribute' | 'key': {name: written}} from the page's tables (first column a `name`)."""
    tables: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in SCHEMA.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(line) <= set("|-: "):
            continue
        if "written" in header:
            name = cells[0].strip("`")
            tables.setdefault(header[0], {})[name] = cells[header.index("written")]
    return tables


WRITTEN = {"always", "--views", "--spatial", "extract-features", "shard", "merged", "--dataset",
           "patches", "torch", "checked"}  # patches: only with --views ...,patches; torch: a torchvision:/timm: backbone;
# checked: a cache extract-features wrote itself, after its input check (not a shard's or a merged file)


def conditions(written: str) -> set[str]:
    """'extract-features, --spatial' -> both must hold for the name to be written."""
    return {c.strip() for c in written.split(",")}


def test_the_schema_page_states_when_each_name_is_written():
    tables = schema_tables()
    assert set(tables) == {"dataset", "attribute", "key"}
    for table, rows in tables.items():
        bad = {name: w for name, w in rows.items() if not conditions(w) <= WRITTEN}
        assert not bad, f"docs/cache-schema.md {table} table: unknown 'written' values {bad}; use one of {WRITTEN}"


def cache_contents(path: Path) -> tuple[set[str], set[str], set[str]]:
    """(dataset paths, root attribute names, config keys) of a cache file."""
    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        attrs = set(f.attrs)
        config = set(json.loads(f.attrs["config"]))
    return set(names), attrs, config


def check_against_schema(path: Path, required: set[str]) -> None:
    """Everything the file holds is documented; every name documented as written in `required` is in it."""
    tables = schema_tables()
    found = dict(zip(("dataset", "attribute", "key"), cache_contents(path)))
    for table, names in found.items():
        documented = tables[table]
        undocumented = sorted(names - set(documented))
        assert not undocumented, f"docs/cache-schema.md does not document the {table}s {undocumented}"
        missing = sorted(n for n, w in documented.items() if conditions(w) <= required and n not in names)
        assert not missing, f"docs/cache-schema.md documents {table}s {missing} that the writer did not write"


def write_synthetic(path: Path, **kw) -> Path:
    try:
        from tests.support.synthetic import write_synthetic_cache
    except ImportError:  # before the move out of the installed package
        from heads.synthetic import write_synthetic_cache
    return write_synthetic_cache(path, **kw)


def test_schema_page_matches_what_the_writer_writes(tmp_path):
    path = write_synthetic(tmp_path / "train.h5", num_classes=3, per_class=4, dim=8, num_views=2,
                           spatial_shape=(2, 2))
    check_against_schema(path, {"always", "--views", "--spatial"})


def test_schema_page_optional_datasets_are_optional(tmp_path):
    path = write_synthetic(tmp_path / "train.h5", num_classes=3, per_class=4, dim=8, num_views=2, kinds=("original",))
    check_against_schema(path, {"always"})
    datasets, _, _ = cache_contents(path)
    optional = {n for n, w in schema_tables()["dataset"].items() if w != "always"}
    assert not datasets & optional


def test_schema_page_documents_the_shard_record():
    """The attributes a shard file carries beside its config are exactly those the page marks `shard`."""
    from pipeline.schema import Shard

    documented = {n for n, w in schema_tables()["attribute"].items() if "shard" in conditions(w)}
    assert documented == set(Shard(0, 2, 0, 3, 6, 3).attrs()), "docs/cache-schema.md's shard attributes"


@pytest.mark.tf
def test_schema_page_matches_a_real_extraction(sample_root, backbone, model_cache, tmp_path, generate):
    """The extraction command's own cache (random-resnet50v2 at 64 px, every view kind, spatial maps): nothing
    undocumented, and every name documented for `always`, `--views`, `--spatial`, `extract-features` and
    `patches` is there."""
    from tests.support import IMAGE_SIZE

    command = generate.commands()["extract-features"]
    out = tmp_path / "train.h5"
    args = ["--data-root", str(sample_root), "--split", "train", "--out", str(out), "--backbone", "random-resnet50v2",
            "--model-cache", str(model_cache), "--image-size", str(IMAGE_SIZE), "--num-views", "2", "--spatial",
            "--views", "original,jigsaw,rcm,patches",
            "--precision", "fp32", "--quiet"]
    command.main(args=args, standalone_mode=False)
    check_against_schema(out, {"always", "--views", "--spatial", "extract-features", "patches", "checked"})


# --- the README ---------------------------------------------------------------------------------------------------

def test_readme_is_a_short_guide():
    lines = README.read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines: move reference material to docs/"
    text = "\n".join(lines)
    assert "make test" in text and "make demo" in text


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "RESULTS.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    """Every relative link of the README and the docs names an existing file, and its #anchor a heading there."""
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.relative_to(ROOT)}: link to {target}: no such file"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.relative_to(ROOT)}: link to {target}: no such heading"


def test_readme_links_every_docs_page():
    text = README.read_text()
    for page in sorted(DOCS.glob("*.md")):
        assert f"docs/{page.name}" in text, f"README.md's index does not link docs/{page.name}"


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out
