"""Tests for tac_ecg_hf.metrics (pure function, evaluate.Metric, Trainer hook, offline evaluate.load)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from tac_ecg_hf.metrics import (
    METRIC_PATH,
    classification_metrics,
    compute_metrics_for_trainer,
    find_optimal_thresholds,
    load_metric,
    sigmoid,
    softmax,
)

SUPER = ["NORM", "MI", "STTC", "CD", "HYP"]


def assert_same_results(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if isinstance(a[key], list):
            assert a[key] == b[key], key
        else:
            assert a[key] == pytest.approx(b[key], nan_ok=True), key

# ---------------------------------------------------------------- tiny known-answer cases
# multi-label, 4 samples x 2 classes
ML_SCORES = np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.4], [0.1, 0.8]])
ML_REFS = np.array([[1, 1], [1, 1], [0, 0], [0, 0]])
# class 0: positives {0.9, 0.6} > negatives {0.3, 0.1}           -> AUC 1
# class 1: positives {0.2, 0.7} vs negatives {0.4, 0.8}: 1 of 4   -> AUC 0.25
# decisions @0.5: [[1,0],[1,1],[0,0],[0,1]]
#   F1 class 0 = 1; class 1: TP 1, FP 1, FN 1 -> 2/4 = 0.5; macro 0.75
#   exact match rows 1, 2 -> 0.5; hamming (0.5 + 1 + 1 + 0.5) / 4 = 0.75

# single-label, 4 samples x 3 classes (rows sum to 1)
SL_SCORES = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
SL_REFS = np.array([0, 1, 2, 2])
# argmax [0, 1, 2, 0] -> accuracy 3/4
# F1: class 0 TP1 FP1 -> 2/3; class 1 -> 1; class 2 TP1 FN1 -> 2/3; macro 7/9
# AUC: class 0 -> 1, class 1 -> 1, class 2: pos {0.5, 0.1} vs neg {0.1, 0.1} -> (2 + 2 * 0.5) / 4 = 0.75


def test_multilabel_known_answer():
    res = classification_metrics(ML_SCORES, ML_REFS, labels=["A", "B"], multi_label=True)
    assert res["auc/A"] == pytest.approx(1.0)
    assert res["auc/B"] == pytest.approx(0.25)
    assert res["macro_auc"] == pytest.approx(0.625)
    assert res["f1/A"] == pytest.approx(1.0)
    assert res["f1/B"] == pytest.approx(0.5)
    assert res["macro_f1"] == pytest.approx(0.75)
    assert res["accuracy"] == pytest.approx(0.5)
    assert res["hamming_accuracy"] == pytest.approx(0.75)
    assert res["auc_skipped_classes"] == []
    assert res["num_samples"] == 4


def test_singlelabel_known_answer_and_sklearn():
    res = classification_metrics(SL_SCORES, SL_REFS, labels=["x", "y", "z"], multi_label=False)
    assert res["accuracy"] == pytest.approx(0.75)
    assert res["f1/x"] == pytest.approx(2 / 3)
    assert res["f1/y"] == pytest.approx(1.0)
    assert res["f1/z"] == pytest.approx(2 / 3)
    assert res["macro_f1"] == pytest.approx(7 / 9)
    assert res["auc/z"] == pytest.approx(0.75)
    assert res["macro_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert res["macro_auc"] == pytest.approx(roc_auc_score(SL_REFS, SL_SCORES, multi_class="ovr", average="macro"))
    assert "hamming_accuracy" not in res


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_sklearn_random(seed):
    rng = np.random.default_rng(seed)
    n, k = 300, 5
    probs = rng.random((n, k))
    refs = (probs + 0.4 * rng.normal(size=(n, k)) > 0.5).astype(int)
    res = classification_metrics(probs, refs, labels=SUPER, multi_label=True, threshold=0.4)
    assert res["macro_auc"] == pytest.approx(roc_auc_score(refs, probs, average="macro"))
    assert res["macro_f1"] == pytest.approx(f1_score(refs, (probs >= 0.4).astype(int), average="macro"))
    for j, name in enumerate(SUPER):
        assert res[f"auc/{name}"] == pytest.approx(roc_auc_score(refs[:, j], probs[:, j]))

    logits = rng.normal(size=(n, 4))
    ids = rng.integers(0, 4, n)
    res = classification_metrics(logits, ids, multi_label=False, from_logits=True)
    p = softmax(logits)
    assert res["macro_auc"] == pytest.approx(roc_auc_score(ids, p, multi_class="ovr", average="macro"))
    assert res["macro_f1"] == pytest.approx(f1_score(ids, p.argmax(1), average="macro"))
    assert res["accuracy"] == pytest.approx(np.mean(p.argmax(1) == ids))
    assert set(k for k in res if k.startswith("auc/")) == {"auc/0", "auc/1", "auc/2", "auc/3"}


def test_skipped_classes_in_auc():
    scores = np.array([[0.9, 0.2, 0.6], [0.2, 0.7, 0.4], [0.8, 0.1, 0.9]])
    refs = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1]])  # class 1 all 0, class 2 all 1
    res = classification_metrics(scores, refs, labels=["a", "b", "c"], multi_label=True)
    assert res["auc_skipped_classes"] == ["b", "c"]
    assert math.isnan(res["auc/b"]) and math.isnan(res["auc/c"])
    assert res["macro_auc"] == pytest.approx(res["auc/a"]) == pytest.approx(1.0)
    # F1 still covers all classes: b never positive, never predicted -> 0
    assert res["f1/b"] == 0.0 and res["f1/c"] == pytest.approx(2 * 2 / (2 * 2 + 1))

    none_valid = classification_metrics(scores, np.ones_like(refs), multi_label=True)
    assert math.isnan(none_valid["macro_auc"])
    assert none_valid["auc_skipped_classes"] == ["0", "1", "2"]

    # single-label: a class absent from the references is skipped too
    res = classification_metrics(SL_SCORES, np.array([0, 1, 1, 0]), multi_label=False)
    assert res["auc_skipped_classes"] == ["2"]
    assert res["macro_auc"] == pytest.approx((res["auc/0"] + res["auc/1"]) / 2)


def test_logits_vs_probabilities():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3, size=(64, 5))
    refs = (rng.random((64, 5)) > 0.5).astype(int)
    a = classification_metrics(logits, refs, labels=SUPER, multi_label=True, from_logits=True)
    b = classification_metrics(sigmoid(logits), refs, labels=SUPER, multi_label=True)
    assert_same_results(a, b)
    ids = rng.integers(0, 5, 64)
    a = classification_metrics(logits, ids, multi_label=False, from_logits=True)
    b = classification_metrics(softmax(logits), ids, multi_label=False)
    assert_same_results(a, b)
    # logits passed as probabilities: refused, with a hint
    with pytest.raises(ValueError, match="from_logits=True"):
        classification_metrics(logits, refs, multi_label=True)


def test_problem_type_inferred_from_reference_rank():
    assert "hamming_accuracy" in classification_metrics(ML_SCORES, ML_REFS)
    assert "hamming_accuracy" not in classification_metrics(SL_SCORES, SL_REFS)


@pytest.mark.parametrize(
    "scores, refs, kwargs, match",
    [
        (np.zeros((4, 3)), np.zeros((4, 2)), {"multi_label": True}, r"expected \(4, 3\)"),
        (np.zeros((4, 3)), np.zeros((4, 3)), {"labels": SUPER, "multi_label": True}, r"expected \(N, 5\)"),
        (np.zeros(4), np.zeros(4), {"multi_label": False}, r"expected \(N, K\)"),
        (np.zeros((4, 3)), np.zeros((5,)), {"multi_label": False}, r"expected \(4,\)"),
        (np.zeros((4, 3)), np.zeros((4, 3)), {"multi_label": False}, r"expected \(4,\)"),
        (np.zeros((0, 3)), np.zeros((0, 3)), {"multi_label": True}, "empty"),
        (np.full((2, 2), np.nan), np.zeros((2, 2)), {"multi_label": True}, "NaN"),
        (np.zeros((2, 2)), np.array([[0, 2], [1, 0]]), {"multi_label": True}, "only 0 and 1"),
        (np.zeros((2, 2)), np.array([0, 2]), {"multi_label": False}, r"\[0, 2\)"),
        (np.zeros((2, 2)), np.array([0.5, 1]), {"multi_label": False}, "integer"),
    ],
)
def test_input_errors(scores, refs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(scores, refs, **kwargs)


def test_optimal_thresholds():
    scores = np.array([[0.10, 0.9], [0.35, 0.2], [0.40, 0.6], [0.80, 0.1]])
    refs = np.array([[0, 1], [1, 0], [1, 1], [1, 0]])
    res = classification_metrics(scores, refs, labels=["a", "b"], multi_label=True, optimal_thresholds=True)
    assert res["threshold/a"] == pytest.approx(0.35)  # separates perfectly
    assert res["threshold/b"] == pytest.approx(0.6)
    assert res["macro_f1_optimal"] == pytest.approx(1.0)
    assert res["macro_f1"] < 1.0  # a at 0.5 misses 0.35 and 0.40
    thr = find_optimal_thresholds(scores, refs, multi_label=True, method="youden")
    assert thr.shape == (2,) and thr[0] == pytest.approx(0.35)
    thr = find_optimal_thresholds(scores, np.array([[0, 1], [0, 0], [0, 1], [0, 0]]))
    assert math.isnan(thr[0]) and thr[1] == pytest.approx(0.6)


# ---------------------------------------------------------------- evaluate.Metric


def test_load_metric_task_matches_pure_function():
    rng = np.random.default_rng(5)
    probs = rng.random((40, 5))
    refs = (rng.random((40, 5)) > 0.6).astype(int)
    metric = load_metric("ptbxl-super")
    assert metric.name == "ecg_classification" and metric.config_name == "ptbxl-super"
    assert metric.labels == tuple(SUPER) and metric.multi_label is True
    res = metric.compute(predictions=probs, references=refs)
    assert set(f"auc/{n}" for n in SUPER) <= set(res) and set(f"f1/{n}" for n in SUPER) <= set(res)
    assert_same_results(res, classification_metrics(probs, refs, SUPER, True))
    # streaming batches give the same answer; per-call override of the threshold
    for i in range(0, 40, 16):
        metric.add_batch(predictions=probs[i : i + 16], references=refs[i : i + 16])
    res2 = metric.compute(threshold=0.3)
    assert_same_results(res2, classification_metrics(probs, refs, SUPER, True, threshold=0.3))


def test_metric_single_label_logits_and_configs():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(30, 4))
    ids = rng.integers(0, 4, 30)
    metric = load_metric("chapman", from_logits=True)
    res = metric.compute(predictions=logits, references=ids)
    assert_same_results(
        res, classification_metrics(logits, ids, ["SB", "AFIB", "GSVT", "SR"], False, from_logits=True)
    )
    m = load_metric("multiclass")
    assert m.multi_label is False and m.labels is None
    res = m.compute(predictions=softmax(logits), references=ids)
    assert "auc/3" in res and "hamming_accuracy" not in res
    m = load_metric(labels=["a", "b"], multi_label=True, threshold=0.7)
    res = m.compute(predictions=ML_SCORES, references=ML_REFS)
    assert res["f1/a"] == pytest.approx(2 / 3)  # @0.7 class a predicts [1, 0, 0, 0] against [1, 1, 0, 0]
    # no configuration at all: the problem type follows the references
    assert "hamming_accuracy" in load_metric().compute(predictions=ML_SCORES, references=ML_REFS)
    assert "hamming_accuracy" not in load_metric().compute(predictions=SL_SCORES, references=SL_REFS)


def test_metric_config_errors():
    with pytest.raises(ValueError, match="Unknown task"):
        load_metric("not-a-task")
    with pytest.raises(ValueError, match="disagree"):
        load_metric("ptbxl-super", labels=["a", "b"])
    with pytest.raises(ValueError, match="disagrees"):
        load_metric("ptbxl-super", multi_label=False)
    metric = load_metric("ptbxl-super")
    with pytest.raises(ValueError, match=r"expected \(N, 5\)"):
        metric.compute(predictions=np.zeros((3, 4)), references=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"expected \(3, 5\)"):
        metric.compute(predictions=np.zeros((3, 5)), references=np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        metric.compute(predictions=np.full((3, 5), np.nan), references=np.zeros((3, 5)))


def test_metric_class_importable():
    import evaluate

    from tac_ecg_hf.metrics import ECGClassificationMetric
    from tac_ecg_hf.metrics.ecg_classification.ecg_classification import ECGClassificationMetric as Direct

    assert ECGClassificationMetric is Direct and issubclass(Direct, evaluate.Metric)
    m = ECGClassificationMetric(task="cinc2017", keep_in_memory=True)
    assert m.labels == ("N", "A", "O", "~") and m.multi_label is False


# ---------------------------------------------------------------- Trainer hook


def test_compute_metrics_for_trainer_multilabel():
    from transformers import EvalPrediction

    rng = np.random.default_rng(7)
    logits = rng.normal(size=(50, 5)).astype(np.float32)
    labels = (rng.random((50, 5)) > 0.5).astype(np.float32)  # Trainer gives float labels for BCE
    fn = compute_metrics_for_trainer("ptbxl-super")
    out = fn(EvalPrediction(predictions=logits, label_ids=labels))
    assert all(isinstance(v, float) for v in out.values())
    assert {"macro_auc", "macro_f1", "accuracy", "hamming_accuracy", "auc_num_skipped", "auc/NORM", "f1/HYP"} <= set(
        out
    )
    ref = classification_metrics(sigmoid(logits), labels, SUPER, True)
    assert out["macro_auc"] == pytest.approx(ref["macro_auc"]) and out["macro_f1"] == pytest.approx(ref["macro_f1"])
    # a tuple of model outputs (logits first) and a plain (predictions, labels) tuple are accepted
    out2 = fn(EvalPrediction(predictions=(logits, rng.normal(size=(50, 8))), label_ids=labels))
    assert out2 == pytest.approx(out)
    assert fn((logits, labels)) == pytest.approx(out)


def test_compute_metrics_for_trainer_single_label():
    from transformers import EvalPrediction

    rng = np.random.default_rng(8)
    logits = rng.normal(size=(40, 4)).astype(np.float32)
    ids = rng.integers(0, 4, 40)
    out = compute_metrics_for_trainer("cinc2017")(EvalPrediction(predictions=logits, label_ids=ids))
    assert out["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == ids))
    assert "f1/~" in out and "hamming_accuracy" not in out
    assert all(isinstance(v, float) for v in out.values())
    with pytest.raises(ValueError, match=r"expected \(40,\)"):
        compute_metrics_for_trainer("cinc2017")(EvalPrediction(predictions=logits, label_ids=np.eye(4)[ids]))


# ---------------------------------------------------------------- evaluate.load, offline


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_evaluate_load_local_dir_offline(tmp_path, monkeypatch, no_network):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path / "modules")
    monkeypatch.setattr(sys, "path", list(sys.path))  # evaluate appends the modules cache to sys.path
    metric = evaluate.load(METRIC_PATH, config_name="ptbxl-super", cache_dir=str(tmp_path / "metrics"))
    assert type(metric).__name__ == "ECGClassificationMetric"
    assert type(metric).__module__.startswith("evaluate_modules.metrics.ecg_classification.")
    copied = list((tmp_path / "modules").rglob("_core.py"))
    assert copied, "evaluate should copy the helper module next to the script"
    res = metric.compute(predictions=ML_SCORES[:, [0, 1, 0, 1, 0]], references=ML_REFS[:, [0, 1, 0, 1, 0]])
    assert res["auc/NORM"] == pytest.approx(1.0) and res["auc/MI"] == pytest.approx(0.25)
    # init kwargs reach the metric; the .py path works too
    metric = evaluate.load(
        os.path.join(METRIC_PATH, "ecg_classification.py"), labels=["a", "b"], multi_label=True, keep_in_memory=True
    )
    assert metric.compute(predictions=ML_SCORES, references=ML_REFS)["macro_auc"] == pytest.approx(0.625)


def test_evaluate_load_offline_fresh_process_without_the_package(tmp_path):
    """A clean interpreter outside the repo, no network, empty HF cache, and tac_ecg_hf made
    unimportable: the copied module still finds the task table in the source tree it came from."""
    script = textwrap.dedent(
        f"""
        import json, socket, sys
        def refuse(*a, **k):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        sys.modules["tac_ecg_hf"] = None  # import tac_ecg_hf -> ImportError
        import evaluate
        m = evaluate.load({METRIC_PATH!r}, config_name="cpsc2018")
        res = m.compute(predictions=[[0.9] * 9, [0.1] * 9], references=[[1] * 9, [0] * 9])
        print(json.dumps({{"labels": list(m.labels), "macro_auc": res["macro_auc"],
                           "fallback": "_tac_ecg_hf_tasks_fallback" in sys.modules}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_EVALUATE_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["labels"][:2] == ["Normal", "AF"] and len(out["labels"]) == 9
    assert out["macro_auc"] == 1.0
    assert out["fallback"] is True


def test_pooled_metrics_use_the_decisions_made_and_bracket_the_point_estimate():
    """Out-of-fold rows (each decided with its own fold's thresholds): F1 and empty decisions come from the stored
    decisions, AUC from the probabilities, the CIs bracket the pooled value; a database filter restricts the rows."""
    from sklearn.metrics import f1_score, roc_auc_score

    from tac_ecg_hf.evaluation import pooled_metrics
    from tac_ecg_hf.tasks import get_task

    spec = get_task("ptbxl-super")
    rng = np.random.default_rng(0)
    refs = (rng.random((80, spec.num_labels)) < 0.35).astype(int)
    refs[np.arange(80), rng.integers(0, spec.num_labels, 80)] = 1
    probs = np.clip(0.3 * refs + 0.7 * rng.random(refs.shape), 0, 1)
    decided = probs > rng.uniform(0.4, 0.7, size=(80, 1))  # per-row ("per-fold") thresholds
    decided[:5] = False  # five records with nothing decided
    rows = [
        dict(probabilities=p.tolist(), reference=r.tolist(), database="ptbxl" if i % 2 else "ludb",
             decision=[spec.labels[j] for j in np.flatnonzero(d)])
        for i, (p, r, d) in enumerate(zip(probs, refs, decided))
    ]
    m = pooled_metrics(rows, "ptbxl-super", n_bootstrap=200)
    assert m["n"] == 80 and m["empty_decision_rate"] == pytest.approx(np.mean(~decided.any(1)))
    assert m["macro_auc"] == pytest.approx(roc_auc_score(refs, probs, average="macro"))
    assert m["macro_f1"] == pytest.approx(f1_score(refs, decided.astype(int), average="macro", zero_division=0.0))
    for key in ("macro_auc", "macro_f1"):
        low, high = m[f"{key}_ci95"]
        assert low <= m[key] <= high and high - low > 0
    assert pooled_metrics(rows, "ptbxl-super", databases=["ludb"], n_bootstrap=50)["n"] == 40
    assert pooled_metrics(rows, "ptbxl-super", databases=["cpsc2018"]) == {"n": 0}
