"""Evaluation through the public predict path: raw records in, ``ECGTaskClassifier.predict_batch`` (all windows of a
record averaged, the adapter's calibrated thresholds, the fallback of exhaustive tasks) out, then the metrics, with
bootstrap 95% confidence intervals. Shared by the training recipes, ``tac-ecg evaluate``, the model cards and the
benchmarks, so that every reported number is what a user of the model gets."""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from .errors import InvalidArgumentError
from .tasks import get_task

__all__ = ["load_records", "predict_records", "calibrate_thresholds", "evaluate_model", "evaluate_split", "metrics_with_ci"]


@lru_cache(maxsize=16)
def _database(name: str, data_root: str):
    from .data.builders import _database_options, database_dir
    from .data.databases import get_database

    return get_database(name, database_dir(data_root, name), **_database_options(name, data_root))


def load_records(data_root: str | os.PathLike, refs: Iterable[dict], task: str):
    """Raw records and their label names for ``task``, from ``{"database", "record_id"}`` references (the columns of
    the task datasets)."""
    records, labels = [], []
    for ref in refs:
        db = _database(ref["database"], str(data_root))
        record = db.load(ref["record_id"])
        found = db.task_labels(record, task)
        if found is None:
            raise InvalidArgumentError(f"{ref['database']}/{ref['record_id']} has no {task} label.")
        records.append(record)
        labels.append(tuple(found))
    return records, labels


def _references(labels: Sequence[tuple[str, ...]], task: str) -> np.ndarray:
    spec = get_task(task)
    if spec.multi_label:
        out = np.zeros((len(labels), spec.num_labels), dtype=np.int64)
        for i, names in enumerate(labels):
            for name in names:
                out[i, spec.label2id[name]] = 1
        return out
    return np.asarray([spec.label2id[names[0]] for names in labels], dtype=np.int64)


def predict_records(classifier, task: str, data_root, refs: Iterable[dict], batch_size: int = 64):
    """Window-averaged probabilities ``(N, K)`` and references of ``refs`` through ``classifier.predict_batch``."""
    records, labels = load_records(data_root, refs, task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictions = classifier.predict_batch(records, task, batch_size=batch_size)
    return np.stack([p.probabilities for p in predictions]), _references(labels, task), predictions


def _classifier(model, task: str):
    from .inference import ECGTaskClassifier

    if isinstance(model, ECGTaskClassifier):
        return model
    return ECGTaskClassifier.from_pretrained(model, tasks=[task])


def calibrate_thresholds(model, task: str, data_root, refs: Iterable[dict]) -> list[float]:
    """Per-class thresholds that maximise each class's F1 on ``refs`` (validation records, never test records); a class
    absent there keeps 0.5."""
    from .metrics import find_optimal_thresholds

    probs, refs_array, _ = predict_records(_classifier(model, task), task, data_root, refs)
    thresholds = find_optimal_thresholds(probs, refs_array, multi_label=True)
    return [0.5 if np.isnan(t) else float(t) for t in thresholds]


def metrics_with_ci(probs: np.ndarray, references: np.ndarray, task: str, thresholds: Sequence[float] | None,
                    n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """The task's metrics at the given thresholds (exhaustive tasks fall back to the most probable class), with
    percentile bootstrap 95% CIs of macro-AUC and macro-F1 (none with ``n_bootstrap=0``)."""
    from .metrics import bootstrap_ci, classification_metrics

    spec = get_task(task)
    kwargs = dict(labels=list(spec.labels), multi_label=spec.multi_label, fallback_to_argmax=spec.exhaustive)
    if spec.multi_label:
        kwargs["threshold"] = list(thresholds) if thresholds else 0.5
    metrics = classification_metrics(probs, references, **kwargs)
    for key in ("macro_auc", "macro_f1") if n_bootstrap else ():
        def metric(p, r, key=key):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return classification_metrics(p, r, per_class=False, **kwargs)[key]

        low, high = bootstrap_ci(metric, probs, references, n_resamples=n_bootstrap, seed=seed)
        metrics[f"{key}_ci95"] = [low, high]
    return metrics


def evaluate_model(model, task: str, data_root, refs: Iterable[dict], n_bootstrap: int = 1000) -> dict:
    """Metrics of ``model`` (a folder, id or ``ECGTaskClassifier``) on ``refs`` through the public predict path."""
    classifier = _classifier(model, task)
    probs, references, _ = predict_records(classifier, task, data_root, refs)
    metrics = metrics_with_ci(probs, references, task, classifier.thresholds(task), n_bootstrap=n_bootstrap)
    return {"n": int(len(references)), **metrics}


def evaluate_split(model, task: str, data_root, split: str = "test", sources: Sequence[str] | None = None,
                   n_bootstrap: int = 1000) -> dict:
    """Metrics on every ``split`` record of the task's sources under ``data_root`` (``tac-ecg evaluate``)."""
    from .data.builders import TASK_SOURCES, _available

    names = _available(data_root, sources or TASK_SOURCES[get_task(task).name])
    refs = []
    for name in names:
        db = _database(name, str(data_root))
        for record_id in db.record_ids(split):
            refs.append({"database": name, "record_id": record_id})
    classifier = _classifier(model, task)
    records, labels, kept = [], [], []
    for ref in refs:
        db = _database(ref["database"], str(data_root))
        try:
            record = db.load(ref["record_id"])
        except ValueError:
            continue
        found = db.task_labels(record, task)
        if found is not None:
            records.append(record)
            labels.append(tuple(found))
            kept.append(ref["database"])
    if not records:
        raise InvalidArgumentError(f"No {split} records with {task} labels under {data_root} (sources {names}).")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictions = classifier.predict_batch(records, task)
    probs = np.stack([p.probabilities for p in predictions])
    references = _references(labels, task)
    metrics = metrics_with_ci(probs, references, task, classifier.thresholds(task), n_bootstrap=n_bootstrap)
    per_source = {name: int(kept.count(name)) for name in sorted(set(kept))}
    return {"model": str(getattr(classifier, "model_path", model)), "task": task, "split": split, "n": len(records),
            "sources": per_source, **metrics}

