"""Figures: image titles say which number is the image_id; a figure appears whole or not at all."""

from __future__ import annotations

import numpy as np

from pipeline.figures import image_title, save_views_figure
from pipeline.views import make_permutations


def test_image_title_names_the_image_id():
    assert image_title(123, "017.Cardinal") == "image_id 123 · Cardinal"
    assert image_title(np.int64(7), "Black_footed_Albatross", sep="\n") == "image_id 7\nBlack footed Albatross"


def test_views_figure_is_written_whole(tmp_path):
    images = [np.random.default_rng(0).random((24, 24, 3)) for _ in range(2)]
    perms = make_permutations("jigsaw", 0, np.array([1, 2]), 1, 3)
    out = save_views_figure(tmp_path / "v.png", images, ["a", "b"], perms, None, 3, 7)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["v.png"]  # no temporary left beside it
