"""ECG classification metric (macro AUC, macro F1, accuracy, per-class AUC / F1) as an ``evaluate`` module.

Loadable both ways::

    from tac_ecg_hf.metrics import ECGClassificationMetric
    metric = ECGClassificationMetric(config_name="ptbxl-super")

    import evaluate
    metric = evaluate.load("/abs/path/tac_ecg_hf/metrics/ecg_classification", config_name="ptbxl-super")
    metric = evaluate.load("/abs/path/tac_ecg_hf/metrics/ecg_classification", labels=["a", "b"], multi_label=True)

The computation lives in ``_core.py`` (numpy + scikit-learn), copied along by ``evaluate.load``.
"""

import datasets
import evaluate
import numpy as np

from ._core import classification_metrics, resolve_config

_DESCRIPTION = """
Classification metrics for ECG tasks, computed from per-class scores (probabilities or logits).
Multi-label: macro one-vs-rest AUC, macro F1 at a probability threshold (default 0.5), exact-match
accuracy and hamming accuracy. Single-label: macro one-vs-rest AUC on softmax probabilities, macro
F1 and accuracy of the argmax. Classes whose references hold a single value are left out of the
macro AUC and listed in `auc_skipped_classes`. Per-class values are keyed `auc/<label>` and `f1/<label>`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: (N, K) scores, probabilities or logits (with `from_logits=True`).
    references: multi-label (N, K) 0/1; single-label (N,) integer class ids.
    threshold (float, optional): multi-label decision threshold on probabilities (default: config, 0.5).
    from_logits (bool, optional): apply sigmoid (multi-label) / softmax (single-label) first.
    optimal_thresholds (bool, optional): also report per-class thresholds `threshold/<label>` and `macro_f1_optimal`.
    threshold_method (str, optional): "f1" (default) or "youden" for the optimal thresholds.
Returns:
    macro_auc, macro_f1, accuracy, hamming_accuracy (multi-label), auc_skipped_classes, num_samples,
    auc/<label>, f1/<label> (and threshold/<label>, macro_f1_optimal on request).
Examples:
    >>> metric = ECGClassificationMetric(labels=["A", "B"], multi_label=True, keep_in_memory=True)
    >>> res = metric.compute(predictions=[[0.9, 0.2], [0.1, 0.8], [0.7, 0.6]], references=[[1, 0], [0, 1], [1, 0]])
    >>> round(res["macro_auc"], 3), round(res["accuracy"], 3)
    (1.0, 0.667)
"""

_CITATION = """
@article{tac_ecg_hf_metrics,
  title = {ECG classification metrics for tac-ecg-hf (macro AUC / F1 following the PTB-XL benchmark conventions)},
  note = {Strodthoff et al., Deep Learning for ECG Analysis: Benchmarks and Insights from PTB-XL, IEEE JBHI 2021}
}
"""


def _as_float_matrix(x):
    if isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], np.ndarray):
        try:
            return np.stack(x).astype(np.float64)
        except ValueError as err:
            raise ValueError(f"predictions: rows have different lengths; expected shape (N, K): {err}") from err
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"predictions must be a numeric array of shape (N, K): {err}") from err


class ECGClassificationMetric(evaluate.Metric):
    """`evaluate.Metric` for ECG classification.

    Configure with ``config_name`` / ``task`` (a task of ``tac_ecg_hf.tasks.TASKS``: fixes labels and
    problem type), or ``labels`` + ``multi_label``; ``config_name="multilabel"`` / ``"multiclass"``
    fix only the problem type; with nothing given, labels are ``"0".."K-1"`` and the problem type is
    inferred from the references (2-D -> multi-label). ``threshold``, ``from_logits``,
    ``optimal_thresholds`` and ``threshold_method`` set defaults that ``compute`` may override.
    """

    def __init__(
        self,
        config_name=None,
        *,
        task=None,
        labels=None,
        multi_label=None,
        threshold=0.5,
        from_logits=False,
        optimal_thresholds=False,
        threshold_method="f1",
        **kwargs,
    ):
        # _info() runs inside the base __init__, so the configuration has to exist first.
        self.task, self.labels, self.multi_label = resolve_config(
            task=task, labels=labels, multi_label=multi_label, config_name=config_name
        )
        self.threshold = float(threshold)
        self.from_logits = bool(from_logits)
        self.optimal_thresholds = bool(optimal_thresholds)
        self.threshold_method = threshold_method
        if config_name is None and self.task is not None:
            config_name = self.task
        super().__init__(config_name=config_name, **kwargs)
        self._module_info.module_name = "ecg_classification"

    @property
    def num_labels(self):
        return None if self.labels is None else len(self.labels)

    def _info(self):
        k = -1 if self.labels is None else len(self.labels)
        multi = datasets.Features(
            {
                "predictions": datasets.Sequence(datasets.Value("float64"), length=k),
                "references": datasets.Sequence(datasets.Value("int32"), length=k),
            }
        )
        single = datasets.Features(
            {
                "predictions": datasets.Sequence(datasets.Value("float64"), length=k),
                "references": datasets.Value("int64"),
            }
        )
        if self.multi_label is None:
            features = [multi, single]
        else:
            features = multi if self.multi_label else single
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#roc-metrics"],
        )

    # validate early, with clear messages, before evaluate's Arrow encoding
    def _check_batch(self, predictions, references):
        scores = _as_float_matrix(predictions)
        if hasattr(references, "detach"):
            references = references.detach().cpu().numpy()
        refs = np.asarray(references)
        k = self.num_labels
        expected = f"(N, {k if k is not None else 'K'})"
        if scores.ndim != 2 or (k is not None and scores.shape[1] != k):
            raise ValueError(
                f"predictions have shape {scores.shape}; expected {expected} scores"
                + (f" for labels {list(self.labels)}" if self.labels is not None else "")
                + "."
            )
        if not np.isfinite(scores).all():
            raise ValueError("predictions contain NaN/inf values; scores must be finite.")
        multi = self.multi_label if self.multi_label is not None else refs.ndim == 2
        n = scores.shape[0]
        if multi and refs.shape != scores.shape:
            raise ValueError(
                f"references have shape {refs.shape}; expected {scores.shape} multi-label 0/1 (same as predictions)."
            )
        if not multi and refs.shape != (n,):
            raise ValueError(f"references have shape {refs.shape}; expected ({n},) integer class ids (single-label).")
        try:
            ref_f = refs.astype(np.float64)
        except (ValueError, TypeError) as err:
            raise ValueError(f"references must be numeric: {err}") from err
        if not np.isfinite(ref_f).all() or not np.all(ref_f == np.round(ref_f)):
            raise ValueError("references must be integers (class ids, or 0/1 for multi-label).")
        return scores, ref_f.astype(np.int64)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of (N, K) scores and their references."""
        if predictions is not None and references is not None:
            predictions, references = self._check_batch(predictions, references)
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one (K,) score vector and its reference."""
        if prediction is not None and reference is not None:
            return self.add_batch(predictions=[np.asarray(prediction)], references=[reference], **kwargs)
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self,
        predictions,
        references,
        threshold=None,
        from_logits=None,
        optimal_thresholds=None,
        threshold_method=None,
    ):
        scores = _as_float_matrix(predictions)
        refs = np.asarray(references)
        if refs.dtype == object:
            refs = np.stack(list(refs))
        return classification_metrics(
            scores,
            refs,
            labels=self.labels,
            multi_label=self.multi_label,
            from_logits=self.from_logits if from_logits is None else bool(from_logits),
            threshold=self.threshold if threshold is None else float(threshold),
            optimal_thresholds=self.optimal_thresholds if optimal_thresholds is None else bool(optimal_thresholds),
            threshold_method=threshold_method or self.threshold_method,
        )
