"""Shared fixtures: a small synthetic CUB and the random ResNet-50 v2, built once per session."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

# One OpenMP thread for torch (and OpenBLAS) in the tests and the commands they start: the heads here are tiny,
# and two threads on a 2-core machine shared with other work spin-wait (test_linear_probe: 65 s of CPU with two
# threads, 9 s with one, same result). TensorFlow does not use OpenMP; commands given an explicit
# OMP_NUM_THREADS (the launchers' workers) keep theirs. Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

import extract  # noqa: E402,F401  (before any test module imports TensorFlow: see extract/__init__.py on triton)

from pipeline.sample import make_sample_dataset  # noqa: E402

from tests.support import IMAGE_SIZE  # noqa: E402


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    """3 classes x 4 images (6 train, 6 test); metadata files list ids in different orders."""
    return make_sample_dataset(tmp_path_factory.mktemp("sample"), classes=3, images_per_class=4, seed=1,
                               min_side=48, max_side=120, shuffle_metadata=True)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def backbone(model_cache):
    """random-resnet50v2 at 64 px with its spatial map kept (2 x 2 at this size)."""
    from extract.backbone import load_backbone

    return load_once(load_backbone, "random-resnet50v2", IMAGE_SIZE, spatial=True, seed=0, model_cache=model_cache)


_LOADED: dict = {}  # load_backbone's arguments -> the Backbone loaded with them, for the whole session


def load_once(load, handle, image_size, spatial=False, seed=0, model_cache="data/models", precision="fp32"):
    """`load(...)` (extract.backbone.load_backbone) the first time these arguments come; later the same Backbone,
    with the precision set again as load_backbone sets it."""
    key = (str(handle), int(image_size), bool(spatial), int(seed), os.path.abspath(model_cache), precision)
    if key in _LOADED:
        from extract.precision import apply_precision

        apply_precision(precision)
    else:
        _LOADED[key] = load(handle, image_size, spatial=spatial, seed=seed, model_cache=model_cache,
                            precision=precision)
    return _LOADED[key]


@pytest.fixture(autouse=True)
def _reuse_loaded_backbones(request, monkeypatch):
    """In tests marked tf, extract-features run in-process loads each backbone (handle, size, spatial, seed, model
    cache, precision) once per session, like the `backbone` fixture, instead of reloading the SavedModel for each
    command (about 4 s of CPU each). Commands run as subprocesses load their own."""
    if request.node.get_closest_marker("tf") is not None:
        import extract.backbone

        load = extract.backbone.load_backbone
        monkeypatch.setattr(extract.backbone, "load_backbone", lambda *a, **k: load_once(load, *a, **k))
    yield


STAGE1_GROUP = "tensorflow"  # `make test` runs pytest -n 2 --dist loadgroup (pytest-xdist)


@functools.lru_cache(maxsize=None)
def _mentions_tf_marker(path: Path) -> bool:
    return path.suffix == ".py" and path.is_file() and "pytest.mark.tf" in path.read_text()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` here: each test file is one unit of work for a worker (its module fixtures are built
    once), and every file with tests marked tf is in one unit: TensorFlow and the random backbone load in one
    worker only. (xdist's own loadgroup reads xdist_group marks through a node attribute pytest 9 no longer has.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndStage1(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            return STAGE1_GROUP if _mentions_tf_marker(config.rootpath / path) else path

    return FilesAndStage1(config, log)


TF_MODULE = re.compile(r"^pytestmark = .*pytest\.mark\.tf\b", re.MULTILINE)  # a module marked tf as a whole


def _tf_deselected(config) -> bool:
    """True when the -m expression would deselect a test marked only `tf` (e.g. -m "not tf")."""
    expr = config.getoption("markexpr") or ""
    if not expr:
        return False
    from _pytest.mark.expression import Expression

    return not Expression.compile(expr).evaluate(lambda name, **kwargs: name == "tf")


def pytest_ignore_collect(collection_path, config):
    """Under -m "not tf", modules marked tf are not even imported, so the stage-2 suite runs without TensorFlow."""
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") and _tf_deselected(config):
        return bool(TF_MODULE.search(collection_path.read_text())) or None
    return None


@pytest.fixture(autouse=True)
def _stage2_never_imports_tensorflow(request):
    """Under -m "not tf", the first test after which TensorFlow is loaded fails at teardown, naming itself: the check runs
    in whichever process ran the test (each pytest-xdist worker too, where pytest_sessionfinish's check would not
    reach the exit status)."""
    yield
    import sys

    if "tensorflow" in sys.modules and not _TF_SEEN and _tf_deselected(request.config):
        _TF_SEEN.append(request.node.nodeid)  # once per process: the tests after it are not to blame
        pytest.fail("TensorFlow was imported during a -m 'not tf' run (by this test, or by a module collected before "
                    "it); stage 2 must not import it", pytrace=False)


_TF_SEEN: list[str] = []  # the test after which this process first found TensorFlow loaded


def pytest_sessionfinish(session, exitstatus):
    """A stage-2 run (-m "not tf") that imported TensorFlow anyway fails: the boundary is part of the contract."""
    import sys

    if _tf_deselected(session.config) and "tensorflow" in sys.modules:
        session.config.get_terminal_writer().line(
            "error: TensorFlow was imported during a -m 'not tf' run; stage 2 must not import it", red=True)
        session.exitstatus = 1
