"""Metrics for ECG classification: macro AUC, macro F1, accuracy and per-class values.

* :func:`classification_metrics` - pure function on numpy arrays (no ``evaluate`` import).
* :func:`compute_metrics_for_trainer` - ``compute_metrics`` callable for ``transformers.Trainer``.
* :class:`ECGClassificationMetric` / :func:`load_metric` - the ``evaluate.Metric`` (imports ``evaluate``
  lazily). The same module loads offline with ``evaluate.load(METRIC_PATH, config_name=<task>)``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from .ecg_classification._core import (
    bootstrap_ci,
    classification_metrics,
    compute_metrics_for_trainer,
    find_optimal_thresholds,
    sigmoid,
    softmax,
    to_probabilities,
)

if TYPE_CHECKING:  # pragma: no cover
    from .ecg_classification.ecg_classification import ECGClassificationMetric

#: Directory to pass to ``evaluate.load`` (a local module directory: works offline).
METRIC_PATH: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ecg_classification")

__all__ = [
    "METRIC_PATH",
    "ECGClassificationMetric",
    "bootstrap_ci",
    "classification_metrics",
    "compute_metrics_for_trainer",
    "find_optimal_thresholds",
    "load_metric",
    "sigmoid",
    "softmax",
    "to_probabilities",
]


def __getattr__(name: str):
    if name == "ECGClassificationMetric":
        from .ecg_classification.ecg_classification import ECGClassificationMetric

        return ECGClassificationMetric
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_metric(task: Optional[str] = None, *, keep_in_memory: bool = True, **kwargs) -> ECGClassificationMetric:
    """Instantiate :class:`ECGClassificationMetric` for a task name (or ``"multilabel"`` /
    ``"multiclass"`` / ``None``) without going through evaluate's module cache.

    ``kwargs`` go to the metric (``labels``, ``multi_label``, ``threshold``, ``from_logits``,
    ``optimal_thresholds``, ``threshold_method``, and evaluate's ``cache_dir``, ``experiment_id``,
    ``num_process``, ``process_id``). ``keep_in_memory=True`` (default) keeps predictions in RAM;
    use ``False`` with ``num_process > 1`` for distributed evaluation.
    """
    from .ecg_classification.ecg_classification import ECGClassificationMetric

    return ECGClassificationMetric(config_name=task, keep_in_memory=keep_in_memory, **kwargs)
