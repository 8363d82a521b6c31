"""Plots for ECGs and experiment results (matplotlib, Agg renderer, imported lazily).

Every function builds a standalone :class:`matplotlib.figure.Figure` on an Agg canvas, without
pyplot: nothing is registered in pyplot's global figure list, so no figure has to be closed and
nothing leaks in loops; the global matplotlib backend is left untouched. When ``path`` is given
the figure is saved as PNG (parent folders are created). The Figure is always returned.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["plot_ecg", "plot_roc_curves", "plot_param_efficiency", "plot_throughput", "save_figure"]

# ECG paper colours
_GRID_MINOR = "#f6c9c9"
_GRID_MAJOR = "#e48f8f"
_TRACE = "#111111"
_HIGHLIGHT = "#b00020"


def _new_figure(figsize, dpi=100) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Optional[Union[str, os.PathLike]], dpi: Optional[int] = None) -> None:
    """Save ``fig`` as PNG at ``path`` (no-op when ``path`` is None)."""
    if path is None:
        return
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi or fig.dpi, bbox_inches="tight", facecolor="white")


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------- ECG


def _default_lead_names(n_leads: int) -> list[str]:
    from .tasks import STANDARD_LEADS

    if n_leads == len(STANDARD_LEADS):
        return list(STANDARD_LEADS)
    return [f"lead {i + 1}" for i in range(n_leads)]


def _ecg_paper(ax, duration_s: float, ylim: tuple[float, float], minor: bool = True) -> None:
    """mm-paper background: minor 0.04 s x 0.1 mV, major 0.2 s x 0.5 mV.

    Drawn as line collections (a tick-based grid with ~250 lines per axis is far too slow)."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator, NullLocator

    y0, y1 = ylim
    ax.set_xlim(0, duration_s)
    ax.set_ylim(y0, y1)
    ix = np.arange(0, int(np.floor(duration_s / 0.04 + 1e-6)) + 1)  # in units of 0.04 s
    iy = np.arange(int(np.ceil(y0 / 0.1 - 1e-6)), int(np.floor(y1 / 0.1 + 1e-6)) + 1)  # in units of 0.1 mV
    xs, ys = ix * 0.04, iy * 0.1
    major_x, major_y = ix % 5 == 0, iy % 5 == 0
    for mask, color, lw, z in ((~major_x, _GRID_MINOR, 0.35, 0.1), (major_x, _GRID_MAJOR, 0.7, 0.2)):
        if minor or z > 0.15:
            ax.vlines(xs[mask], y0, y1, colors=color, linewidth=lw, zorder=z)
    for mask, color, lw, z in ((~major_y, _GRID_MINOR, 0.35, 0.1), (major_y, _GRID_MAJOR, 0.7, 0.2)):
        if minor or z > 0.15:
            ax.hlines(ys[mask], 0, duration_s, colors=color, linewidth=lw, zorder=z)
    step = 1.0 if duration_s <= 15 else 5.0 if duration_s <= 75 else 10.0 * np.ceil(duration_s / 150)
    ax.xaxis.set_major_locator(MultipleLocator(step if duration_s > 2 else 0.2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.yaxis.set_major_locator(NullLocator())
    ax.tick_params(which="both", length=0, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color(_GRID_MAJOR)
        spine.set_linewidth(0.7)


def _normalise_decision(decision) -> set[str]:
    if decision is None:
        return set()
    if isinstance(decision, str):
        return {decision}
    return {str(d) for d in decision}


def plot_ecg(
    signal,
    sampling_rate: float = 100,
    lead_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    prediction: Optional[Mapping[str, float]] = None,
    decision: Optional[Union[str, Sequence[str]]] = None,
    path: Optional[Union[str, os.PathLike]] = None,
    *,
    layout: str = "auto",
    top_k: int = 5,
    units: str = "mV",
    dpi: int = 100,
) -> Figure:
    """Draw a multi-lead ECG on mm-paper-like grids.

    Args:
        signal: (leads, T) array (numpy or torch), in ``units`` (mV for the grid to mean 0.1 mV / mm).
        sampling_rate: Hz; the time axis is in seconds.
        lead_names: one name per lead (default: the 12 standard leads, or "lead i").
        title: figure title (top left).
        prediction: label -> probability; the ``top_k`` most probable are listed top right.
        decision: label or labels decided on (highlighted in the list, and added if not in the top k).
        path: save a PNG there.
        layout: ``"6x2"`` (two columns: leads 1-6 left, 7-12 right), ``"12x1"`` (one lead per row,
            any lead count: ``"{n}x1"``), or ``"auto"`` (6x2 for 12 leads, else one column).

    Returns:
        the Figure; its lead axes carry labels ``"lead:<name>"`` (``fig.axes`` holds only those).
    """
    x = _to_numpy(signal).astype(np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"signal has shape {x.shape}; expected (leads, T).")
    n_leads, n_samples = x.shape
    if n_samples < 2:
        raise ValueError(f"signal has shape {x.shape}; expected (leads, T) with T >= 2 samples.")
    if n_leads > n_samples:
        raise ValueError(f"signal has shape {x.shape}; expected (leads, T) - is it transposed?")
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be positive, got {sampling_rate}.")
    names = list(lead_names) if lead_names is not None else _default_lead_names(n_leads)
    if len(names) != n_leads:
        raise ValueError(f"{len(names)} lead names for a signal with {n_leads} leads.")
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    if layout == "auto":
        layout = "6x2" if n_leads == 12 else f"{n_leads}x1"
    if layout == "6x2":
        if n_leads != 12:
            raise ValueError(f"layout '6x2' needs 12 leads, got {n_leads}; use '{n_leads}x1'.")
        rows, cols = 6, 2
    elif layout.endswith("x1") and layout[:-2].isdigit():
        rows, cols = n_leads, 1
    else:
        raise ValueError(f"layout must be 'auto', '6x2' or '<n>x1', got {layout!r}.")

    duration = n_samples / float(sampling_rate)
    t = np.arange(n_samples) / float(sampling_rate)
    # one y-range for all leads keeps amplitudes comparable (mm = 0.1 mV everywhere)
    lo, hi = np.percentile(x, 0.5), np.percentile(x, 99.5)
    lo, hi = min(lo, x.min()), max(hi, x.max())
    centre = 0.5 * (lo + hi)
    half = max(0.5 * (hi - lo) * 1.08, 0.6)
    ylim = (centre - half, centre + half)

    # wider panels for long recordings (up to 20 in); minor grid only where it stays legible
    col_w = float(np.clip(0.75 * duration, 7.5, 20.0))
    width = col_w * cols + 1.0
    minor = col_w * dpi / (duration / 0.04) >= 2.5
    row_h = 1.35 if cols == 2 else (2.0 if n_leads <= 3 else 1.0)
    header = 0.2 + (0.2 * min(top_k, len(prediction)) + 0.25 if prediction else 0.0) + (0.35 if title else 0.0)
    height = rows * row_h + header + 0.4
    fig = _new_figure((width, height), dpi=dpi)
    top = 1.0 - header / height
    gs = fig.add_gridspec(
        rows, cols, left=0.04, right=0.99, top=top, bottom=0.35 / height + 0.02, hspace=0.08, wspace=0.03
    )
    for i in range(n_leads):
        col, row = divmod(i, rows) if cols == 2 else (0, i)
        ax = fig.add_subplot(gs[row, col], label=f"lead:{names[i]}")
        _ecg_paper(ax, duration, ylim, minor=minor)
        ax.plot(t, x[i], color=_TRACE, linewidth=0.7)
        ax.text(0.005, 0.95, names[i], transform=ax.transAxes, va="top", ha="left", fontsize=9, fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.8))
        if row == rows - 1:
            ax.set_xlabel("time (s)", fontsize=8)
        else:
            ax.tick_params(labelbottom=False)
    # calibration note
    grid_note = f"grid: 0.2 s x 0.5 {units}" + (f" (minor 0.04 s x 0.1 {units})" if minor else "")
    fig.text(0.99, 0.005, f"{grid_note}; {sampling_rate:g} Hz",
             ha="right", va="bottom", fontsize=7, color="#666666")
    if title:
        fig.text(0.04, 1.0 - 0.15 / height, title, ha="left", va="top", fontsize=12, fontweight="bold")
    if prediction:
        _prediction_box(fig, prediction, _normalise_decision(decision), top_k, height, title is not None)
    save_figure(fig, path)
    return fig


def _prediction_box(fig, prediction, decided: set[str], top_k: int, height: float, has_title: bool) -> None:
    items = sorted(((str(k), float(v)) for k, v in prediction.items()), key=lambda kv: -kv[1])
    shown = items[: max(1, top_k)]
    shown_names = {k for k, _ in shown}
    shown += [(k, v) for k, v in items[max(1, top_k):] if k in decided and k not in shown_names]
    line_h = 0.2 / height
    y = 1.0 - (0.15 + (0.35 if has_title else 0.0)) / height
    x0 = 0.04
    heading = "prediction" + (f"  (decision: {', '.join(sorted(decided))})" if decided else "")
    fig.text(x0, y, heading, ha="left", va="top", fontsize=9, color="#333333", fontstyle="italic")
    for i, (name, prob) in enumerate(shown):
        hit = name in decided
        bar = "█" * int(round(prob * 20))
        fig.text(
            x0, y - (i + 1) * line_h,
            f"{'▶' if hit else ' '} {name:<10s} {prob:6.1%}  {bar}",
            ha="left", va="top", fontsize=9, family="monospace",
            color=_HIGHLIGHT if hit else "#222222", fontweight="bold" if hit else "normal",
        )


# --------------------------------------------------------------------------- ROC


def plot_roc_curves(
    scores,
    references,
    labels: Optional[Sequence[str]] = None,
    multi_label: Optional[bool] = None,
    path: Optional[Union[str, os.PathLike]] = None,
    title: Optional[str] = None,
    *,
    from_logits: bool = False,
) -> Figure:
    """One-vs-rest ROC curve per class with its AUC in the legend.

    Inputs follow :func:`tac_ecg_hf.metrics.classification_metrics` (``scores`` (N, K);
    ``references`` (N, K) 0/1 or (N,) ids). Classes whose references hold a single value have no
    ROC curve and are listed as "not defined" in the legend.
    """
    from sklearn.metrics import roc_curve

    from .metrics import classification_metrics, to_probabilities

    res = classification_metrics(scores, references, labels=labels, multi_label=multi_label, from_logits=from_logits)
    s = _to_numpy(scores).astype(np.float64)
    r = _to_numpy(references)
    multi = r.ndim == 2 if multi_label is None else bool(multi_label)
    probs = to_probabilities(s, multi, from_logits)
    k = s.shape[1]
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    onehot = r.astype(np.int64) if multi else np.eye(k, dtype=np.int64)[r.astype(np.int64)]

    fig = _new_figure((6.2, 5.6))
    ax = fig.add_subplot(1, 1, 1, label="roc")
    colors = _palette(k)
    for j, name in enumerate(names):
        auc = res[f"auc/{name}"]
        if math.isnan(auc):
            ax.plot([], [], color=colors[j], linestyle=":", label=f"{name} (AUC not defined)")
            continue
        fpr, tpr, _ = roc_curve(onehot[:, j], probs[:, j])
        ax.plot(fpr, tpr, color=colors[j], linewidth=1.6, label=f"{name} (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=0.8)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    macro = res["macro_auc"]
    ax.set_title(f"{title + ' - ' if title else ''}macro AUC = {macro:.3f}" if not math.isnan(macro)
                 else (title or "ROC curves"))
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    save_figure(fig, path)
    return fig


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# --------------------------------------------------------------------------- results


def plot_param_efficiency(
    points: Sequence[Mapping],
    path: Optional[Union[str, os.PathLike]] = None,
    *,
    title: Optional[str] = None,
    xlabel: str = "trainable parameters",
    ylabel: str = "macro AUC",
) -> Figure:
    """Scatter of score against trainable parameters (log x axis).

    ``points``: dicts with ``name``, ``trainable_params`` (> 0), ``macro_auc`` and optional
    ``macro_auc_std`` (error bar) and ``group`` (colour + legend entry).
    """
    if not points:
        raise ValueError("points is empty.")
    for p in points:
        for key in ("name", "trainable_params", "macro_auc"):
            if key not in p:
                raise ValueError(f"every point needs 'name', 'trainable_params', 'macro_auc'; missing {key!r} in {p}.")
        if not float(p["trainable_params"]) > 0:
            raise ValueError(f"trainable_params must be > 0 for a log axis: {p}.")
    groups = list(dict.fromkeys(str(p.get("group", "")) for p in points))
    colors = dict(zip(groups, _palette(len(groups))))
    fig = _new_figure((7.0, 4.8))
    ax = fig.add_subplot(1, 1, 1, label="param_efficiency")
    seen = set()
    for p in points:
        g = str(p.get("group", ""))
        xv, yv = float(p["trainable_params"]), float(p["macro_auc"])
        std = p.get("macro_auc_std")
        label = g if g and g not in seen else None
        seen.add(g)
        ax.errorbar(xv, yv, yerr=None if std is None else float(std), fmt="o", color=colors[g], markersize=6,
                    capsize=3, elinewidth=1, label=label)
        ax.annotate(str(p["name"]), (xv, yv), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    xs = [float(p["trainable_params"]) for p in points]
    ax.set_xlim(min(xs) / 2.5, max(xs) * 2.5)
    ax.set_xlabel(xlabel + " (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    if any(g for g in groups):
        ax.legend(fontsize=8)
    save_figure(fig, path)
    return fig


def plot_throughput(
    bars: Union[Mapping[str, float], Sequence[tuple]],
    path: Optional[Union[str, os.PathLike]] = None,
    *,
    title: Optional[str] = None,
    ylabel: str = "samples / s",
) -> Figure:
    """Bar chart of throughput.

    ``bars`` is ``{name: samples_per_s}`` (one bar each) or a list of ``(group, name, value)``
    (grouped bars: one cluster per group, one colour per name).
    """
    if isinstance(bars, Mapping):
        triples = [("", str(k), float(v)) for k, v in bars.items()]
    else:
        triples = []
        for item in bars:
            if len(item) != 3:
                raise ValueError(f"bars as a list needs (group, name, value) triples, got {item!r}.")
            triples.append((str(item[0]), str(item[1]), float(item[2])))
    if not triples:
        raise ValueError("bars is empty.")
    groups = list(dict.fromkeys(g for g, _, _ in triples))
    names = list(dict.fromkeys(n for _, n, _ in triples))
    grouped = not (len(groups) == 1 and groups[0] == "")
    fig = _new_figure((max(5.0, 1.1 * len(triples) + 2.0), 4.4))
    ax = fig.add_subplot(1, 1, 1, label="throughput")
    colors = dict(zip(names, _palette(len(names))))
    values = {(g, n): v for g, n, v in triples}
    if grouped:
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            xs = [gi + (i - (len(names) - 1) / 2) * width for gi, g in enumerate(groups) if (g, n) in values]
            vs = [values[(g, n)] for g in groups if (g, n) in values]
            rects = ax.bar(xs, vs, width=width * 0.95, color=colors[n], label=n)
            ax.bar_label(rects, fmt="%.0f", fontsize=7, padding=2)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups)
        ax.legend(fontsize=8)
    else:
        rects = ax.bar(range(len(names)), [values[("", n)] for n in names], color=[colors[n] for n in names])
        ax.bar_label(rects, fmt="%.0f", fontsize=8, padding=2)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20 if max(len(n) for n in names) > 10 else 0, ha="right"
                           if max(len(n) for n in names) > 10 else "center")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(v for _, _, v in triples) * 1.15)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title)
    save_figure(fig, path)
    return fig
