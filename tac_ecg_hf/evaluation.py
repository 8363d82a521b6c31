"""Evaluation of task adapters on the real datasets, shared by the CLI, the model cards and the tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .tasks import get_task

#: sub-directory of the data root holding each task's source dataset (the layout of ../shared/data)
TASK_DATA_SUBDIRS = {"ptbxl-super": "ptbxl", "cpsc2018": "cpsc2018", "cinc2017": "cinc2017", "chapman": "chapman"}


def load_task_dataset(task: str, data_root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, **config):
    """A ``DatasetDict`` (train/validation/test) for ``task`` from a data root laid out like ``../shared/data``
    (``ptbxl/`` with ``ptbxl_database.csv`` and WFDB records or an ``.npz`` array file, ``cpsc2018/``, ``cinc2017/``,
    ``chapman/``). The PTB-XL reader finds a lone ``.npz`` itself when there are no WFDB records."""
    from .data import load_ecg_dataset

    task = get_task(task).name
    root = Path(data_root).expanduser()
    data_dir = root / TASK_DATA_SUBDIRS[task]
    if not data_dir.is_dir():
        data_dir = root  # the root is the dataset directory itself
    return load_ecg_dataset(task, data_dir=str(data_dir), cache_dir=str(cache_dir) if cache_dir else None, **config)


@torch.no_grad()
def predict_scores(model, dataset, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of ``model`` over a split (``input_values``, ``labels`` columns)."""
    model.eval()
    data = dataset.with_format("numpy", columns=["input_values", "labels"])
    logits, labels = [], []
    for start in range(0, len(data), batch_size):
        batch = data[start : start + batch_size]
        x = torch.as_tensor(np.asarray(batch["input_values"]), dtype=torch.float32)
        logits.append(model(input_values=x).logits.float().numpy())
        labels.append(np.asarray(batch["labels"]))
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_adapter(classifier, task: str, dataset) -> dict:
    """Metrics of one task adapter of an ``ECGTaskClassifier`` on a split."""
    from .metrics import classification_metrics

    spec = get_task(task)
    classifier.model.set_adapter(task)
    logits, labels = predict_scores(classifier.model, dataset)
    return classification_metrics(logits, labels, labels=list(spec.labels), multi_label=spec.multi_label, from_logits=True)


def evaluate_bundled(
    model: str, task: str, data_dir: str | os.PathLike, split: str = "test", revision: str | None = None
) -> dict:
    """Re-compute the held-out metrics a model card reports."""
    from .inference import ECGTaskClassifier

    classifier = ECGTaskClassifier.from_pretrained(model, tasks=[task], revision=revision)
    pre = classifier.preprocessor(task)
    dataset = load_task_dataset(task, data_dir, sampling_rate=int(pre.sampling_rate), num_samples=pre.num_samples)
    if split not in dataset:
        raise ValueError(f"split {split!r} not found; the dataset has {list(dataset)}.")
    metrics = evaluate_adapter(classifier, task, dataset[split])
    return {"model": str(model), "task": task, "split": split, "n": len(dataset[split]), **_floats(metrics)}


def _floats(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float, np.floating, np.integer)):
            out[key] = float(value)
        elif isinstance(value, dict):
            out[key] = _floats(value)
        else:
            out[key] = value
    return out
