"""The ``ecg_classification`` metric module directory (also loadable with ``evaluate.load(<this dir>)``).

``_core`` holds the numpy / scikit-learn computation; ``ecg_classification`` the ``evaluate.Metric``.
"""

from ._core import classification_metrics, compute_metrics_for_trainer, find_optimal_thresholds

__all__ = ["classification_metrics", "compute_metrics_for_trainer", "find_optimal_thresholds"]
