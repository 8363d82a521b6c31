"""Pure NumPy / scikit-learn implementation of the ECG classification metrics.

This file has no dependency on ``evaluate`` or on the rest of ``tac_ecg_hf`` so that it can be
copied next to ``ecg_classification.py`` by ``evaluate.load(<dir>)`` (which copies a metric
script and its relative imports into its modules cache) and still work there.

Conventions
-----------
* ``scores``: (N, K) probabilities (``from_logits=False``) or logits (``from_logits=True``).
  Multi-label logits go through a sigmoid, single-label logits through a softmax.
* ``references``: multi-label (N, K) of 0/1; single-label (N,) integer class ids in [0, K).
* AUC is one-vs-rest per class. A class whose references hold a single value (all 0 or all 1)
  has no defined AUC: it is reported as NaN under ``auc/<label>``, listed in
  ``auc_skipped_classes`` and left out of ``macro_auc``. ``macro_auc`` is NaN if no class is valid.
* F1: multi-label thresholds the probabilities at ``threshold``; single-label takes the argmax.
  ``macro_f1`` is the unweighted mean over all K classes (a class never present and never
  predicted gets F1 = 0, as in scikit-learn with ``zero_division=0``).
* Accuracy: single-label argmax accuracy; multi-label exact-match (subset) accuracy, plus
  ``hamming_accuracy`` = mean over samples of the fraction of correctly decided labels.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = [
    "bootstrap_ci",
    "classification_metrics",
    "compute_metrics_for_trainer",
    "find_optimal_thresholds",
    "resolve_config",
    "sigmoid",
    "softmax",
    "to_probabilities",
]

THRESHOLD_METHODS = ("f1", "youden")
MULTI_LABEL_CONFIGS = ("multilabel", "multi_label", "multi-label")
SINGLE_LABEL_CONFIGS = ("multiclass", "single_label", "single-label")
_PROB_TOL = 1e-6


# --------------------------------------------------------------------------- tasks


def _load_tasks_module():
    """Import ``tac_ecg_hf.tasks``; when this file runs from evaluate's module cache and the
    package is not importable, load ``tasks.py`` from the source tree the module was copied from."""
    try:
        return importlib.import_module("tac_ecg_hf.tasks")
    except ImportError:
        pass
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "tasks.py"] if len(here.parents) > 2 else []
    meta = here.with_name("ecg_classification.json")  # written by evaluate next to the copied script
    if meta.is_file():
        try:
            original = Path(json.loads(meta.read_text(encoding="utf-8"))["original file path"]).resolve()
            candidates.insert(0, original.parents[2] / "tasks.py")
        except (KeyError, ValueError, OSError, IndexError):
            pass
    for path in candidates:
        if path.is_file() and path.parent.name == "tac_ecg_hf":
            name = "_tac_ecg_hf_tasks_fallback"
            if name in sys.modules:
                return sys.modules[name]
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError(
        "Task names need the tac_ecg_hf package (tac_ecg_hf.tasks). Install it, or configure the "
        "metric with explicit `labels=[...]` and `multi_label=True/False` instead of a task name."
    )


def resolve_config(
    task: Optional[str] = None,
    labels: Optional[Sequence[str]] = None,
    multi_label: Optional[bool] = None,
    config_name: Optional[str] = None,
) -> tuple[Optional[str], Optional[tuple[str, ...]], Optional[bool]]:
    """Turn (task | config_name | labels + multi_label) into ``(task_name, labels, multi_label)``.

    ``config_name`` may be a task name from ``tac_ecg_hf.tasks.TASKS``, ``"multilabel"``,
    ``"multiclass"`` or ``"default"`` / ``None`` (labels and problem type inferred from the data).
    A task fixes labels and problem type; explicit ``labels`` / ``multi_label`` must then agree.
    """
    cfg = None if config_name in (None, "default") else str(config_name)
    if cfg is not None and cfg.lower() in MULTI_LABEL_CONFIGS + SINGLE_LABEL_CONFIGS:
        implied = cfg.lower() in MULTI_LABEL_CONFIGS
        if multi_label is not None and bool(multi_label) != implied:
            raise ValueError(f"config_name={config_name!r} contradicts multi_label={multi_label}.")
        multi_label = implied
        cfg = None
    if cfg is not None:
        if task is not None and task != cfg:
            raise ValueError(f"config_name={config_name!r} and task={task!r} disagree; give one of them.")
        task = cfg
    if labels is not None:
        if isinstance(labels, str):
            raise ValueError("`labels` must be a sequence of label names, not a string.")
        labels = tuple(str(label) for label in labels)
        if len(set(labels)) != len(labels):
            raise ValueError(f"`labels` contains duplicates: {labels}.")
    if task is None:
        return None, labels, (None if multi_label is None else bool(multi_label))
    tasks = _load_tasks_module()
    if task not in tasks.TASKS:
        raise ValueError(
            f"Unknown task/config {task!r}. Known tasks: {', '.join(tasks.TASKS)}; "
            f"other configs: 'default', 'multilabel', 'multiclass'."
        )
    spec = tasks.TASKS[task]
    if labels is not None and tuple(labels) != tuple(spec.labels):
        raise ValueError(f"labels={list(labels)} disagree with task {task!r} labels {list(spec.labels)}.")
    if multi_label is not None and bool(multi_label) != spec.multi_label:
        raise ValueError(f"multi_label={multi_label} disagrees with task {task!r} ({spec.problem_type}).")
    return spec.name, tuple(spec.labels), spec.multi_label


# --------------------------------------------------------------------------- transforms


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    # numerically stable for large |x|
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def to_probabilities(scores: np.ndarray, multi_label: bool, from_logits: bool) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if not from_logits:
        return scores
    return sigmoid(scores) if multi_label else softmax(scores, axis=-1)


# --------------------------------------------------------------------------- validation


def _as_2d_float(scores, name: str = "predictions") -> np.ndarray:
    arr = scores
    if isinstance(arr, (list, tuple)) and len(arr) > 0 and isinstance(arr[0], np.ndarray):
        try:
            arr = np.stack(arr)
        except ValueError as err:
            raise ValueError(f"{name}: rows have different lengths; expected shape (N, K).") from err
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} must be a numeric array of shape (N, K) (scores per class): {err}") from err
    return arr


def _validate(
    scores,
    references,
    labels: Optional[Sequence[str]],
    multi_label: Optional[bool],
    from_logits: bool,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], bool]:
    s = _as_2d_float(scores)
    try:
        r = np.asarray(references)
        if r.dtype == object:
            r = np.asarray(r.tolist(), dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"references must be (N, K) 0/1 (multi-label) or (N,) class ids (single-label): {err}"
        ) from err
    if multi_label is None:
        if r.ndim not in (1, 2):
            raise ValueError(
                f"references have shape {r.shape}; expected (N, K) 0/1 for multi-label or (N,) class ids "
                f"for single-label."
            )
        multi_label = r.ndim == 2
    expected_refs = "(N, K) of 0/1" if multi_label else "(N,) integer class ids"
    k_hint = f"K={len(labels)} classes {list(labels)}" if labels is not None else "K classes"
    if s.ndim != 2:
        raise ValueError(
            f"predictions have shape {s.shape}; expected (N, K) scores with {k_hint} (and references {expected_refs})."
        )
    n, k = s.shape
    if n == 0:
        raise ValueError("predictions are empty; expected (N, K) with N >= 1.")
    if labels is not None and k != len(labels):
        raise ValueError(f"predictions have shape {s.shape}; expected (N, {len(labels)}) for labels {list(labels)}.")
    if multi_label:
        if r.shape != (n, k):
            raise ValueError(
                f"references have shape {r.shape}; expected {(n, k)} (multi-label 0/1, same shape as predictions "
                f"{s.shape})."
            )
    else:
        if r.shape != (n,):
            raise ValueError(
                f"references have shape {r.shape}; expected ({n},) integer class ids for single-label "
                f"(predictions {s.shape})."
            )
    if not np.isfinite(s).all():
        bad = int((~np.isfinite(s)).sum())
        raise ValueError(f"predictions contain {bad} NaN/inf value(s); scores must be finite.")
    try:
        rf = r.astype(np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"references must be numeric ({expected_refs}): {err}") from err
    if not np.isfinite(rf).all():
        raise ValueError("references contain NaN/inf values.")
    if multi_label:
        if not np.isin(rf, (0.0, 1.0)).all():
            raise ValueError("multi-label references must contain only 0 and 1 (hard labels).")
        r = rf.astype(np.int64)
    else:
        if not np.all(rf == np.round(rf)):
            raise ValueError("single-label references must be integer class ids.")
        r = rf.astype(np.int64)
        if r.min() < 0 or r.max() >= k:
            raise ValueError(f"single-label references must lie in [0, {k}); got range [{r.min()}, {r.max()}].")
    if not from_logits and (s.min() < -_PROB_TOL or s.max() > 1 + _PROB_TOL):
        raise ValueError(
            f"predictions lie in [{s.min():.4g}, {s.max():.4g}] but from_logits=False expects probabilities in "
            f"[0, 1]; pass from_logits=True for logits."
        )
    if labels is None:
        labels = tuple(str(i) for i in range(k))
    return s, r, tuple(labels), bool(multi_label)


# --------------------------------------------------------------------------- thresholds


def _best_threshold(y: np.ndarray, p: np.ndarray, method: str) -> float:
    from sklearn.metrics import precision_recall_curve, roc_curve

    if y.min() == y.max():
        return math.nan
    if method == "youden":
        fpr, tpr, thr = roc_curve(y, p)
        finite = np.isfinite(thr)
        j = (tpr - fpr)[finite]
        return float(thr[finite][int(np.argmax(j))])
    precision, recall, thr = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(thr[int(np.argmax(f1))])


def find_optimal_thresholds(
    scores,
    references,
    multi_label: Optional[bool] = None,
    from_logits: bool = False,
    method: str = "f1",
) -> np.ndarray:
    """Per-class decision thresholds on probabilities, one-vs-rest.

    ``method="f1"`` maximises the class F1 score, ``"youden"`` maximises TPR - FPR. A class with
    a single reference value gets NaN. Tune on a validation split, apply on the test split
    (``probs >= thresholds``); thresholds tuned and scored on the same data are optimistic.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"method must be one of {THRESHOLD_METHODS}, got {method!r}.")
    s, r, _, multi_label = _validate(scores, references, None, multi_label, from_logits)
    probs = to_probabilities(s, multi_label, from_logits)
    onehot = r if multi_label else np.eye(s.shape[1], dtype=np.int64)[r]
    return np.array([_best_threshold(onehot[:, j], probs[:, j], method) for j in range(s.shape[1])])


# --------------------------------------------------------------------------- metrics


def _nanmean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def classification_metrics(
    scores,
    references,
    labels: Optional[Sequence[str]] = None,
    multi_label: Optional[bool] = None,
    from_logits: bool = False,
    threshold: float | Sequence[float] = 0.5,
    *,
    optimal_thresholds: bool = False,
    threshold_method: str = "f1",
    per_class: bool = True,
    fallback_to_argmax: bool = False,
) -> dict:
    """Macro AUC / F1 / accuracy (+ per-class AUC / F1) for ECG classification.

    Args:
        scores: (N, K) probabilities, or logits with ``from_logits=True``.
        references: multi-label (N, K) 0/1; single-label (N,) integer class ids.
        labels: K label names used in the per-class keys (default ``"0" .. "K-1"``).
        multi_label: problem type; ``None`` infers it from ``references.ndim`` (2 -> multi-label).
        from_logits: apply a sigmoid (multi-label) or softmax (single-label) first.
        threshold: multi-label decision threshold on probabilities, one for all classes or one per class (e.g. the
            calibrated thresholds stored with an adapter); ignored for single-label argmax.
        fallback_to_argmax: multi-label records with no class at or above its threshold are decided as their most
            probable class (tasks whose classes cover every record; what ``ECGTaskClassifier.predict`` does).
        optimal_thresholds: also return per-class one-vs-rest thresholds (``threshold/<label>``)
            chosen on these very data by ``threshold_method`` (``"f1"`` or ``"youden"``), and
            ``macro_f1_optimal``, the macro F1 with those thresholds (optimistic: tuned in-sample).
        per_class: include ``auc/<label>`` and ``f1/<label>``.

    Returns:
        dict with ``macro_auc``, ``macro_f1``, ``accuracy``, ``hamming_accuracy`` (multi-label only),
        ``auc_skipped_classes`` (list of label names), ``num_samples``, ``empty_decision_rate`` (multi-label: the
        fraction of records with no label decided, after any fallback), ``softmax_macro_auc`` (the TAC-ECG code's
        non-standard variant: AUC of a softmax across the classes, also for multi-label tasks) and the per-class
        entries.

    Raises:
        ValueError: on wrong shapes, NaN/inf scores, non-0/1 multi-label references, out-of-range
            class ids, or scores outside [0, 1] with ``from_logits=False``.
    """
    from sklearn.metrics import f1_score, roc_auc_score

    thresholds = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
    if thresholds.ndim != 1 or not np.all((thresholds >= 0.0) & (thresholds <= 1.0)):
        raise ValueError(f"threshold must be probabilities in [0, 1], got {threshold}.")
    if threshold_method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold_method must be one of {THRESHOLD_METHODS}, got {threshold_method!r}.")
    s, r, labels, multi_label = _validate(scores, references, labels, multi_label, from_logits)
    n, k = s.shape
    probs = to_probabilities(s, multi_label, from_logits)
    onehot = r if multi_label else np.eye(k, dtype=np.int64)[r]

    # AUC, one-vs-rest; skip classes with a single reference value
    aucs: list[float] = []
    skipped: list[str] = []
    for j, name in enumerate(labels):
        y = onehot[:, j]
        if y.min() == y.max():
            aucs.append(math.nan)
            skipped.append(name)
        else:
            aucs.append(float(roc_auc_score(y, probs[:, j])))

    # decisions
    if multi_label:
        if len(thresholds) not in (1, k):
            raise ValueError(f"threshold needs 1 or {k} values, got {len(thresholds)}.")
        decisions = (probs >= thresholds[None, :]).astype(np.int64)
        empty = decisions.sum(axis=1) == 0
        if fallback_to_argmax and empty.any():
            decisions[np.flatnonzero(empty), probs[empty].argmax(axis=1)] = 1
        f1s = f1_score(r, decisions, average=None, labels=list(range(k)), zero_division=0.0)
        accuracy = float(np.mean(np.all(decisions == r, axis=1)))
    else:
        pred = probs.argmax(axis=1)
        f1s = f1_score(r, pred, average=None, labels=list(range(k)), zero_division=0.0)
        accuracy = float(np.mean(pred == r))
    f1s = [float(v) for v in np.atleast_1d(f1s)]

    out: dict = {
        "macro_auc": _nanmean(aucs),
        "macro_f1": float(np.mean(f1s)),
        "accuracy": accuracy,
    }
    if multi_label:
        out["hamming_accuracy"] = float(np.mean(np.mean(decisions == r, axis=1)))
        out["empty_decision_rate"] = float(np.mean(decisions.sum(axis=1) == 0))
    if from_logits:
        logits = s
    else:  # back to logits: log-odds for sigmoid outputs, log-probabilities (softmax-invariant) for softmax outputs
        clipped = np.clip(probs, 1e-12, 1 - 1e-12)
        logits = np.log(clipped) - (np.log1p(-clipped) if multi_label else 0.0)
    out["softmax_macro_auc"] = _softmax_macro_auc(logits, onehot)
    out["auc_skipped_classes"] = skipped
    out["num_samples"] = int(n)
    if per_class:
        for name, auc in zip(labels, aucs):
            out[f"auc/{name}"] = auc
        for name, f1 in zip(labels, f1s):
            out[f"f1/{name}"] = f1
    if optimal_thresholds:
        thr = np.array([_best_threshold(onehot[:, j], probs[:, j], threshold_method) for j in range(k)])
        tuned = []
        for j, name in enumerate(labels):
            out[f"threshold/{name}"] = float(thr[j])
            t = thr[j] if not math.isnan(thr[j]) else thresholds[j if len(thresholds) == k else 0]
            tuned.append(float(f1_score(onehot[:, j], (probs[:, j] >= t).astype(np.int64), zero_division=0.0)))
        out["macro_f1_optimal"] = float(np.mean(tuned))
    return out


def _softmax_macro_auc(logits: np.ndarray, onehot: np.ndarray) -> float:
    """Macro AUC of a softmax across the classes (as TAC-ECG's released code computes it, for multi-label tasks too:
    labelled as a non-standard variant wherever it is reported)."""
    from sklearn.metrics import roc_auc_score

    p = softmax(logits, axis=1)
    aucs = [
        float(roc_auc_score(onehot[:, j], p[:, j]))
        for j in range(p.shape[1])
        if onehot[:, j].min() != onehot[:, j].max()
    ]
    return float(np.mean(aucs)) if aucs else math.nan


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    scores: np.ndarray,
    references: np.ndarray,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric(scores, references)`` over records (resampled with
    replacement; resamples on which the metric is undefined, e.g. a class absent, are dropped)."""
    rng = np.random.default_rng(seed)
    scores, references = np.asarray(scores), np.asarray(references)
    values = []
    for _ in range(n_resamples):
        idx = rng.integers(0, len(scores), len(scores))
        value = metric(scores[idx], references[idx])
        if value is not None and not math.isnan(value):
            values.append(value)
    if not values:
        return (math.nan, math.nan)
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


# --------------------------------------------------------------------------- Trainer


def compute_metrics_for_trainer(
    task_name: Optional[str] = None,
    *,
    labels: Optional[Sequence[str]] = None,
    multi_label: Optional[bool] = None,
    threshold: float = 0.5,
    optimal_thresholds: bool = False,
    per_class: bool = True,
) -> Callable[[object], dict]:
    """Return ``compute_metrics(eval_pred) -> dict[str, float]`` for ``transformers.Trainer``.

    The callable takes an ``EvalPrediction`` (or a ``(predictions, label_ids)`` tuple) holding
    numpy logits (N, K) (a tuple of outputs uses its first element) and labels (N, K) float 0/1
    or (N,) int; applies the sigmoid / softmax and returns a flat dict of floats: ``macro_auc``,
    ``macro_f1``, ``accuracy``, ``hamming_accuracy`` (multi-label), ``auc_num_skipped``,
    ``auc/<label>``, ``f1/<label>`` (Trainer prefixes them with ``eval_``).
    """
    task, labels_t, ml = resolve_config(task=task_name, labels=labels, multi_label=multi_label)

    def compute_metrics(eval_pred) -> dict:
        if hasattr(eval_pred, "predictions"):
            logits, label_ids = eval_pred.predictions, eval_pred.label_ids
        else:
            logits, label_ids = eval_pred[0], eval_pred[1]
        if (
            isinstance(logits, (tuple, list))
            and len(logits) > 0
            and not np.isscalar(logits[0])
            and np.ndim(logits[0]) == 2
        ):
            logits = logits[0]
        if isinstance(label_ids, (tuple, list)) and len(label_ids) == 1:
            label_ids = label_ids[0]
        if label_ids is None:
            raise ValueError("compute_metrics needs label_ids; set `label_names` / pass `labels` in the eval dataset.")
        res = classification_metrics(
            logits,
            label_ids,
            labels=labels_t,
            multi_label=ml,
            from_logits=True,
            threshold=threshold,
            optimal_thresholds=optimal_thresholds,
            per_class=per_class,
        )
        skipped = res.pop("auc_skipped_classes")
        res["auc_num_skipped"] = float(len(skipped))
        res["num_samples"] = float(res["num_samples"])
        return {key: float(value) for key, value in res.items()}

    compute_metrics.task = task  # type: ignore[attr-defined]
    compute_metrics.labels = labels_t  # type: ignore[attr-defined]
    return compute_metrics
