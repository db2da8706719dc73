"""curves.png is drawn on one figure per process (a bank records ten runs in a row): a run's figure is the
one a fresh figure draws, whatever was drawn before it."""

from __future__ import annotations

from heads.training import figures as plots


def history(epochs: int, components: tuple[str, ...], scale: float, val: bool = True) -> list[dict[str, float]]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "lr": 0.1, "loss": scale / e, **{k: scale / (2 * e) for k in components},
               "train_acc": min(1.0, 0.1 * e), "rows_ce": 100}
        if val:
            row.update(val_loss=scale / e + 0.1, val_acc=min(1.0, 0.08 * e))
        rows.append(row | {"seconds": 1.0})
    return rows


def test_a_runs_curves_do_not_depend_on_the_figure_drawn_before(tmp_path, monkeypatch):
    first = history(12, ("ce", "pirl"), 40.0)  # more curves, other limits, a validation split
    second = history(4, ("ce",), 2.0, val=False)
    plots.plot_curves(first, tmp_path / "first.png", 9, title="a long title of the first run")
    plots.plot_curves(second, tmp_path / "second.png", 4, title="the second run")
    monkeypatch.setattr(plots, "_CURVES", {})  # a fresh figure
    plots.plot_curves(second, tmp_path / "fresh.png", 4, title="the second run")
    assert (tmp_path / "second.png").read_bytes() == (tmp_path / "fresh.png").read_bytes()
    plots.plot_curves(first, tmp_path / "again.png", 9, title="a long title of the first run")
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "first.png").read_bytes()
