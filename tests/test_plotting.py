"""Tests for tac_ecg_hf.plotting: PNGs are written, non-trivial, and have the expected axes."""

from __future__ import annotations

import numpy as np
import pytest

from tac_ecg_hf import plotting
from tac_ecg_hf.tasks import STANDARD_LEADS


def _synthetic_ecg(n_leads=12, seconds=10, fs=100, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(seconds * fs) / fs
    beat = np.zeros_like(t)
    for c in np.arange(0.3, seconds, 0.8):
        beat += 1.2 * np.exp(-(((t - c) / 0.012) ** 2)) + 0.25 * np.exp(-(((t - c - 0.25) / 0.05) ** 2))
    return np.stack([beat * (0.4 + 0.1 * i) + 0.02 * rng.normal(size=t.size) for i in range(n_leads)])


def _read_png(path, min_bytes=10_000):
    import matplotlib.image as mpimg

    assert path.is_file() and path.stat().st_size > min_bytes, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    # not a blank canvas
    assert float(img[..., :3].std()) > 0.01
    return img


def _n_pyplot_figures():
    from matplotlib._pylab_helpers import Gcf

    return Gcf.get_num_fig_managers()


def _lead_axes(fig):
    return [ax for ax in fig.axes if ax.get_label().startswith("lead:")]


def test_plot_ecg_12_leads_6x2(tmp_path):
    before = _n_pyplot_figures()
    path = tmp_path / "sub" / "ecg.png"
    fig = plotting.plot_ecg(
        _synthetic_ecg(),
        sampling_rate=100,
        lead_names=list(STANDARD_LEADS),
        title="record 1",
        prediction={"NORM": 0.9, "MI": 0.1, "STTC": 0.05, "CD": 0.6, "HYP": 0.02},
        decision=["NORM", "CD"],
        path=path,
    )
    img = _read_png(path, min_bytes=50_000)
    assert img.shape[1] > img.shape[0] > 500  # landscape, reasonably large
    leads = _lead_axes(fig)
    assert len(leads) == 12 == len(fig.axes)
    assert [ax.get_label() for ax in leads] == [f"lead:{n}" for n in STANDARD_LEADS]
    # 6 x 2 grid: limb leads left column, chest leads right column
    x_left = {round(ax.get_position().x0, 3) for ax in leads[:6]}
    x_right = {round(ax.get_position().x0, 3) for ax in leads[6:]}
    assert len(x_left) == len(x_right) == 1 and x_left != x_right
    assert leads[0].get_xlim() == pytest.approx((0, 10))  # seconds
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "NORM" in texts and "90.0%" in texts and "record 1" in texts
    assert _n_pyplot_figures() == before  # nothing left open in pyplot


def test_plot_ecg_12x1_and_single_lead(tmp_path):
    fig = plotting.plot_ecg(_synthetic_ecg(), 100, STANDARD_LEADS, layout="12x1", path=tmp_path / "a.png")
    leads = _lead_axes(fig)
    assert len(leads) == 12 and len({round(ax.get_position().x0, 3) for ax in leads}) == 1
    _read_png(tmp_path / "a.png")
    fig = plotting.plot_ecg(_synthetic_ecg(1, seconds=3, fs=300), 300, ["I"], prediction={"A": 0.7, "N": 0.3},
                            decision="A", path=tmp_path / "b.png")
    assert len(_lead_axes(fig)) == 1
    assert _lead_axes(fig)[0].get_xlim() == pytest.approx((0, 3))
    _read_png(tmp_path / "b.png", min_bytes=5_000)
    assert plotting.plot_ecg(_synthetic_ecg(), 100) is not None  # default names, no path: nothing written


@pytest.mark.parametrize(
    "signal, kwargs, match",
    [
        (np.zeros((1000, 12)), {}, "transposed"),
        (np.zeros((12, 1000)), {"lead_names": ["I"]}, "lead names"),
        (np.zeros((3, 1000)), {"layout": "6x2"}, "12 leads"),
        (np.zeros((12, 1000)), {"layout": "3x4"}, "layout"),
    ],
)
def test_plot_ecg_errors(signal, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.plot_ecg(signal, 100, **kwargs)


def test_plot_roc_curves(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.random((200, 5))
    refs = (probs + 0.3 * rng.normal(size=probs.shape) > 0.6).astype(int)
    refs[:, 4] = 0  # no positives: no ROC curve for HYP
    labels = ["NORM", "MI", "STTC", "CD", "HYP"]
    fig = plotting.plot_roc_curves(probs, refs, labels, True, path=tmp_path / "roc.png", title="ptbxl-super")
    _read_png(tmp_path / "roc.png")
    (ax,) = fig.axes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 5 and legend[0].startswith("NORM (AUC = 0.") and "not defined" in legend[4]
    assert "macro AUC" in ax.get_title()
    # single-label logits
    logits = rng.normal(size=(60, 4))
    fig = plotting.plot_roc_curves(logits, rng.integers(0, 4, 60), ["N", "A", "O", "~"], False, from_logits=True)
    assert len(fig.axes[0].get_legend().get_texts()) == 4


def test_plot_param_efficiency(tmp_path):
    points = [
        dict(name="linear probe", trainable_params=3_000, macro_auc=0.85, macro_auc_std=0.01, group="probe"),
        dict(name="LRC", trainable_params=20_000, macro_auc=0.90, group="adapter"),
        dict(name="LoRA", trainable_params=40_000, macro_auc=0.89, macro_auc_std=0.005, group="adapter"),
        dict(name="full FT", trainable_params=8.7e6, macro_auc=0.91, macro_auc_std=0.004),
    ]
    fig = plotting.plot_param_efficiency(points, tmp_path / "eff.png", title="efficiency")
    _read_png(tmp_path / "eff.png")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert {t.get_text() for t in ax.texts} >= {"linear probe", "LRC", "LoRA", "full FT"}
    with pytest.raises(ValueError, match="trainable_params"):
        plotting.plot_param_efficiency([dict(name="x", trainable_params=0, macro_auc=0.5)])


def test_plot_throughput(tmp_path):
    fig = plotting.plot_throughput({"resnet1d": 500.0, "resnet18-1d": 64.0}, tmp_path / "t1.png")
    _read_png(tmp_path / "t1.png", min_bytes=5_000)
    assert len(fig.axes[0].patches) == 2
    triples = [("train", "small", 500), ("train", "r18", 64), ("infer", "small", 1800), ("infer", "r18", 240)]
    fig = plotting.plot_throughput(triples, tmp_path / "t2.png", title="CPU")
    _read_png(tmp_path / "t2.png", min_bytes=5_000)
    ax = fig.axes[0]
    assert len(ax.patches) == 4 and [t.get_text() for t in ax.get_xticklabels()] == ["train", "infer"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["small", "r18"]
    with pytest.raises(ValueError, match="triples"):
        plotting.plot_throughput([("a", 1.0)])
