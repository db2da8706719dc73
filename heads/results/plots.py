"""Figures of a sweep (sweep.png, labels.png) and what every figure's title says (`flags_text`); a run's own
figures are in heads.training.figures.

Every figure is drawn for a page: text at least FONT points at the size it is saved (dpi 100), titles that say
what the figure is of (`flags_text`: untrained backbone, synthetic data, n seeds), nothing clipped by the axes."""

from __future__ import annotations

from heads.cells import K_NAME, Cell, K, k_order, k_text
from heads.training.figures import FONT, FONTS, pyplot, save_figure  # noqa: F401  (FONTS, pyplot: read by the study too)

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.cub import display_name


def flags_text(untrained: bool = False, synthetic: bool = False, seeds: int | None = None) -> str:
    """'untrained backbone · synthetic data · 2 seeds': what a figure's title must say where it is true."""
    parts = ["untrained backbone"] * bool(untrained) + ["synthetic data"] * bool(synthetic)
    if seeds is not None:
        parts.append(f"{seeds} seed{'s' if seeds != 1 else ''}")
    return " · ".join(parts)


def k_tick(k: K, labelled: str = "") -> str:
    """'5', or 'all (7)': a K axis tick with the labelled rows per class 'all' stands for."""
    return f"all ({labelled})" if k is None and labelled else k_text(k)


def _entry_name(entry: dict, several: bool) -> str:
    return f"{entry['aux']} K={Cell.of_row(entry).k_text}" if several else entry["aux"]


def _slice(done: Sequence[dict[str, str]], runs: Sequence[dict[str, str]], swept: Sequence[str], aux: str,
           name: str, values: list, chosen: dict[str, str], x_of: Callable[[Any], float]) -> tuple:
    """(x, mean, std) of validation top-1 (%) along option `name`, the other options at the chosen setting."""
    others = [k for k in runs[0] if k in swept and k != name and chosen.get(k, "") != ""]
    others.append(K_NAME)
    xs, means, stds = [], [], []
    for v in values:
        top1 = [100 * float(r["val_top1"]) for r in done if r["aux"] == aux and r[name] == str(v)
                and all(r[k] == chosen[k] for k in others)]
        if top1:
            xs.append(x_of(v))
            means.append(np.mean(top1))
            stds.append(np.std(top1, ddof=1) if len(top1) > 1 else 0.0)
    return np.array(xs), np.array(means), np.array(stds)


def _validation_panel(ax: Any, name: str, runs: Sequence[dict[str, str]], selected: Sequence[dict],
                      grid: dict[str, dict[str, list]], swept: Sequence[str], colors: dict[str, str]) -> None:
    """One panel of sweep.png: validation top-1 against option `name`, a line per selection that varies it."""
    flag = "--" + name.replace("_", "-")
    values = [v for aux in grid for v in grid[aux].get(name, [])]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    categories = list(dict.fromkeys(str(v) for v in values))
    x_of = (lambda v: float(v)) if numeric else (lambda v: categories.index(str(v)))
    done = [r for r in runs if r["status"] == "done"]
    ks = sorted({Cell.of_row(e).k for e in selected}, key=k_order)
    for entry in selected:
        aux = entry["aux"]
        if len(grid[aux].get(name, [])) < 2:
            continue
        chosen = next(r for r in done if r["aux"] == aux and r["setting"] == entry["setting"])
        xs, m, sd = _slice(done, runs, swept, aux, name, grid[aux][name], chosen, x_of)
        style = ["-", "--", ":", "-."][ks.index(Cell.of_row(entry).k) % 4]
        ax.plot(xs, m, marker="o", color=colors[aux], linestyle=style, label=_entry_name(entry, len(ks) > 1))
        ax.fill_between(xs, np.clip(m - sd, 0, 100), np.clip(m + sd, 0, 100), color=colors[aux], alpha=0.15)
        ax.plot([x_of(chosen[name])], [100 * entry["val_top1_mean"]], marker="*", markersize=13, color=colors[aux],
                markeredgecolor="black", linestyle="none")
    if numeric and min(float(v) for v in values) > 0 and max(values) / min(values) >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(categories)), categories)
        ax.set_xlim(-0.4, len(categories) - 0.6)
    ax.set_xlabel(flag)
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(f"validation top-1 vs {flag}\n(other options at the selection, ★ selected)", fontsize=FONT)
    ax.legend(fontsize=FONT)


def _test_panel(ax: Any, selected: Sequence[dict], colors: dict[str, str], sweep_dir: Path) -> None:
    """The last panel of sweep.png: test top-1 of each selection, a dot per seed, mean ± std."""
    from heads.training.metrics import metrics_from_predictions_csv

    several = len({Cell.of_row(e).k for e in selected}) > 1
    names = []
    for i, entry in enumerate(selected):
        points = [100 * metrics_from_predictions_csv(sweep_dir / rel / "predictions.csv")["top1"]
                  for rel in entry["runs"]]
        jitter = np.linspace(-0.12, 0.12, len(points)) if len(points) > 1 else np.zeros(1)
        ax.scatter(i + jitter, points, color=colors[entry["aux"]], zorder=3, s=22)
        mean = float(np.mean(points))
        std = float(np.std(points, ddof=1)) if len(points) > 1 else 0.0
        ax.errorbar([i + 0.3], [mean], yerr=[std], fmt="_", color="black", capsize=4, markersize=14)
        names.append(_entry_name(entry, several).replace(" ", "\n"))
    ax.set_xticks(range(len(names)), names, fontsize=FONT)
    ax.set_xlim(-0.5, len(names) - 0.2)
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("test top-1 at each selected setting\n(a dot per seed; bar: mean ± std)", fontsize=FONT)


def plot_sweep(path: Path, runs: Sequence[dict[str, str]], selected: Sequence[dict], grid: dict[str, dict[str, list]],
               swept: Sequence[str], summary: Sequence[dict], sweep_dir: Path) -> None:
    """sweep.png: validation top-1 against each swept option (a slice through each selected setting, mean
    +- std over seeds), and the test top-1 of each selection, a dot per seed (from its predictions.csv)."""
    import matplotlib

    plt = pyplot()
    colors = {aux: f"C{i}" for i, aux in enumerate(grid)}
    panels = [n for n in swept if n != K_NAME]
    with matplotlib.rc_context(FONTS):
        fig, axes = plt.subplots(1, len(panels) + 1, figsize=(5.5 * (len(panels) + 1), 5.0), squeeze=False)
        for ax, name in zip(axes[0], panels):
            _validation_panel(ax, name, runs, selected, grid, swept, colors)
        _test_panel(axes[0][-1], selected, colors, sweep_dir)
        fig.tight_layout()
        save_figure(fig, path)
    plt.close(fig)


def _num(value: Any) -> float:
    """A summary value as a float (summary rows hold floats; read back from summary.csv, strings; '' is nan)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def plot_labels(path: Path, summary: Sequence[dict], auxes: Sequence[str], sweep_dir: Path, flags: str = "") -> None:
    """labels.png: test top-1 against labels per class, a line per aux choice at its selected setting for each K,
    with the 95% interval of its mean as bars (the summary's `top1_ci_*`: the interval kind of its differences, the
    band of every label-efficiency figure); chance dashed; K evenly spaced, 'all' labelled with the rows per class
    it stood for; `flags` (flags_text) in the title."""
    import matplotlib

    from heads.results.stats import INTERVAL_NAMES

    plt = pyplot()
    by_cell = {Cell.of_row(r): r for r in summary}
    ks = sorted({c.k for c in by_cell}, key=k_order)
    shown = [a for a in auxes if any(c.method == a for c in by_cell)]
    with matplotlib.rc_context(FONTS):
        fig, ax = plt.subplots(figsize=(8, 5.6), layout="constrained")
        for i, aux in enumerate(shown):
            at = [k for k in ks if Cell(aux, k) in by_cell]
            rows = [by_cell[Cell(aux, k)] for k in at]
            xs = np.array([ks.index(k) for k in at]) + (i - (len(shown) - 1) / 2) * 0.07
            m = np.array([100 * _num(r["top1_mean"]) for r in rows])
            low = np.array([100 * _num(r.get("top1_ci_low")) for r in rows])
            high = np.array([100 * _num(r.get("top1_ci_high")) for r in rows])
            err = np.nan_to_num(np.vstack([m - low, high - m]), nan=0.0)
            ax.errorbar(xs, m, yerr=err, marker="o", color=f"C{i}", capsize=3, label=aux)
        chance = sorted({_num(r.get("chance_top1")) for r in summary} - {float("nan")})
        if chance and not np.isnan(chance[0]):
            ax.axhline(100 * chance[0], color="0.35", linestyle="--", linewidth=1,
                       label=f"chance ({100 * chance[0]:.1f}%)")
        all_rows = [r for c, r in by_cell.items() if c.k is None]
        per_class = (_num(all_rows[0].get("labelled_rows")) / _num(all_rows[0].get("classes"))) if all_rows else float("nan")
        labelled = "" if np.isnan(per_class) else f"{per_class:.3g}"
        ax.set_xticks(range(len(ks)), [k_tick(k, labelled) for k in ks])
        ax.set_xlim(-0.5, len(ks) - 0.5)
        ax.set_ylim(-3, 103)
        ax.set_xlabel("labelled training images per class (K)")
        ax.set_ylabel("test top-1 (%)")
        kinds = {str(r.get("interval", "")) for r in summary} & set(INTERVAL_NAMES)
        band = f"bars: 95% interval, {INTERVAL_NAMES[kinds.pop()]}" if len(kinds) == 1 else "bars: 95% interval"
        ax.set_title("\n".join(p for p in ("test top-1 at each method's selected setting per K", flags, band) if p))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(shown) + 1, 4), frameon=False)
        save_figure(fig, path)
    plt.close(fig)
