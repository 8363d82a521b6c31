"""Evaluation through the public predict path: raw records in, ``ECGTaskClassifier.predict_batch`` (all windows of a
record averaged, the adapter's calibrated thresholds, the fallback of exhaustive tasks) out, then the metrics, with
bootstrap 95% confidence intervals. Shared by the training recipes, ``tac-ecg evaluate``, the model cards and the
benchmarks, so that every reported number is what a user of the model gets."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from .errors import InvalidArgumentError
from .tasks import get_task

__all__ = [
    "load_records",
    "predict_records",
    "evaluate_model",
    "evaluate_split",
    "metrics_with_ci",
    "write_predictions",
    "read_predictions",
    "pooled_metrics",
    "zero_shot_metrics",
]


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


def metrics_with_ci(
    probs: np.ndarray,
    references: np.ndarray,
    task: str,
    thresholds: Sequence[float] | None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """The task's metrics at the given thresholds (exhaustive tasks fall back to the most probable class), with
    percentile bootstrap 95% CIs of macro-AUC and macro-F1 (none with ``n_bootstrap=0``)."""
    from .metrics import classification_metrics

    spec = get_task(task)
    kwargs = dict(labels=list(spec.labels), multi_label=spec.multi_label, fallback_to_argmax=spec.exhaustive)
    if spec.multi_label:
        kwargs["threshold"] = list(thresholds) if thresholds else 0.5
    metrics = classification_metrics(probs, references, **kwargs)
    for key in ("macro_auc", "macro_f1") if n_bootstrap else ():
        metrics[f"{key}_ci95"] = _metric_ci(key, probs, references, kwargs, n_bootstrap, seed)
    return metrics


def _metric_ci(key: str, probs, references, kwargs: dict, n_bootstrap: int, seed: int = 0) -> list[float]:
    """Percentile bootstrap 95% CI of one ``classification_metrics`` value (undefined-AUC warnings silenced)."""
    from .metrics import bootstrap_ci, classification_metrics

    def metric(p, r):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return classification_metrics(p, r, per_class=False, **kwargs)[key]

    return list(bootstrap_ci(metric, probs, references, n_resamples=n_bootstrap, seed=seed))


def evaluate_model(
    model,
    task: str,
    data_root,
    refs: Iterable[dict],
    n_bootstrap: int = 1000,
    predictions_path: str | os.PathLike | None = None,
) -> dict:
    """Metrics of ``model`` (a folder, id or ``ECGTaskClassifier``) on ``refs`` through the public predict path; with
    ``predictions_path``, also every record's probabilities and decision (JSON Lines), e.g. to pool the out-of-fold
    predictions of a cross-validation."""
    classifier = _classifier(model, task)
    refs = list(refs)
    probs, references, predictions = predict_records(classifier, task, data_root, refs)
    if predictions_path is not None:
        write_predictions(predictions_path, refs, predictions, references)
    metrics = metrics_with_ci(probs, references, task, classifier.thresholds(task), n_bootstrap=n_bootstrap)
    return {"n": int(len(references)), **metrics}


def write_predictions(path, refs: Sequence[dict], predictions, references: np.ndarray) -> None:
    """One JSON line per record: database, record_id, probabilities, decision, reference (class ids or multi-hot)."""
    import json

    with open(path, "w") as fh:
        for ref, pred, target in zip(refs, predictions, references):
            fh.write(
                json.dumps(
                    {
                        "database": ref["database"],
                        "record_id": ref["record_id"],
                        "probabilities": [round(float(p), 6) for p in pred.probabilities],
                        "decision": pred.decision,
                        "reference": np.asarray(target).tolist(),
                    },
                    allow_nan=False,
                )
                + "\n"
            )


def read_predictions(paths: Iterable[str | os.PathLike]) -> list[dict]:
    import json

    rows = []
    for path in paths:
        with open(path) as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def pooled_metrics(
    rows: Sequence[dict], task: str, databases: Sequence[str] | None = None, n_bootstrap: int = 1000
) -> dict:
    """Metrics of pooled per-record predictions (e.g. out-of-fold predictions of a k-fold CV, each decided with its own
    fold's calibrated thresholds), optionally restricted to some databases, with bootstrap 95% CIs."""
    from .metrics import bootstrap_ci, classification_metrics

    spec = get_task(task)
    rows = [r for r in rows if databases is None or r["database"] in databases]
    if not rows:
        return {"n": 0}
    probs = np.asarray([r["probabilities"] for r in rows], dtype=np.float64)
    refs = np.asarray([r["reference"] for r in rows])
    decided = np.zeros_like(probs, dtype=np.int64)
    for i, r in enumerate(rows):
        for label in r["decision"]:
            decided[i, spec.label2id[label]] = 1
    kwargs = dict(labels=list(spec.labels), multi_label=spec.multi_label)
    metrics = classification_metrics(probs, refs, **kwargs)
    if spec.multi_label:  # F1 and empty decisions of the decisions actually made (per-fold thresholds, fallback)
        from sklearn.metrics import f1_score

        f1 = f1_score(refs, decided, average=None, labels=list(range(spec.num_labels)), zero_division=0.0)
        metrics["macro_f1"] = float(np.mean(f1))
        metrics.update({f"f1/{label}": float(v) for label, v in zip(spec.labels, f1)})
        metrics["empty_decision_rate"] = float(np.mean(decided.sum(1) == 0))

        def macro_f1(d, r):
            return float(np.mean(f1_score(r, d, average=None, labels=list(range(spec.num_labels)), zero_division=0.0)))

        metrics["macro_f1_ci95"] = list(bootstrap_ci(macro_f1, decided, refs, n_resamples=n_bootstrap))
    else:
        metrics["macro_f1_ci95"] = _metric_ci("macro_f1", probs, refs, kwargs, n_bootstrap)
    metrics["macro_auc_ci95"] = _metric_ci("macro_auc", probs, refs, kwargs, n_bootstrap)
    return {"n": len(rows), **metrics}


def evaluate_split(
    model,
    task: str,
    data_root,
    split: str | None = "test",
    sources: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
) -> dict:
    """Metrics on every ``split`` record (``None``: all records) of the task's sources under ``data_root`` that carries
    a label of ``task`` (``tac-ecg evaluate``; the model cards)."""
    from .data.builders import TASK_SOURCES, _available

    names = _available(data_root, sources or TASK_SOURCES[get_task(task).name])
    refs = []
    for name in names:
        db = _database(name, str(data_root))
        refs += [
            {"database": name, "record_id": rid}
            for rid in db.record_ids(split)
            if db.task_labels(rid, task) is not None
        ]
    if not refs:
        raise InvalidArgumentError(
            f"No {split or 'labelled'} records with {task} labels under {data_root} (sources {names})."
        )
    metrics = evaluate_model(model, task, data_root, refs, n_bootstrap=n_bootstrap)
    per_source = {name: sum(r["database"] == name for r in refs) for name in names}
    return {"task": task, "split": split or "all", "sources": per_source, **metrics}


def zero_shot_metrics(
    model,
    task: str,
    data_root,
    prompts: dict[str, str],
    *,
    database: str,
    split: str | None = "test",
    max_records: int | None = None,
    n_bootstrap: int = 1000,
    progress: bool = False,
) -> dict:
    """Zero-shot metrics of a model repository's CETP dual encoder (``cetp/``) on ``task``, no labels used: every
    record of ``database`` (one ``split``, or all with ``None``; the first ``max_records``) that carries the task's
    labels is scored against ``prompts`` (one text per label) through the ``zero-shot-ecg-classification`` pipeline,
    and the scores are compared with the references: ``n``, ``classification_metrics`` and a bootstrap 95% CI of
    macro-AUC. A task with its own ``<task>/preprocessor_config.json`` (cinc2017: lead I) is read through it."""
    from tqdm.auto import tqdm
    from transformers import AutoFeatureExtractor, pipeline

    from .inference import resolve_model
    from .metrics import classification_metrics

    spec = get_task(task)
    repo = resolve_model(model)
    kwargs = {}
    if (repo / task / "preprocessor_config.json").is_file():
        kwargs["feature_extractor"] = AutoFeatureExtractor.from_pretrained(repo / task)
    classify = pipeline("zero-shot-ecg-classification", model=str(repo), **kwargs)
    texts = [prompts[label] for label in spec.labels]
    db = _database(database, str(data_root))
    scores, refs = [], []
    for rid in tqdm(db.record_ids(split)[:max_records], desc=f"zero-shot {task}", unit="rec", disable=not progress):
        record = db.load(rid)
        labels = db.task_labels(record, task)
        if labels is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-record quality notes are not the point here
            out = {r["label"]: r["score"] for r in classify(record, candidate_labels=texts)}
        scores.append([out[t] for t in texts])
        refs.append(labels)
    probs, references = np.asarray(scores), _references(refs, task)
    metric_kwargs = dict(labels=list(spec.labels), multi_label=spec.multi_label)
    metrics = classification_metrics(probs, references, **metric_kwargs)
    if n_bootstrap:
        metrics["macro_auc_ci95"] = _metric_ci("macro_auc", probs, references, metric_kwargs, n_bootstrap)
    return {"n": len(refs), **metrics}
