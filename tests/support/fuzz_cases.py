"""Cases the capped runner (:mod:`support.capped`) runs in its children: each reads a record and/or loads a model and
predicts, and returns what happened as JSON. A refusal with one of the package's own exception types
(:func:`tac_ecg_hf.errors.bad_input_error_types`) is an outcome; any other exception escapes, so the child exits
with its traceback and the test fails on that case.
"""

from __future__ import annotations

import math
import warnings

#: classifiers loaded once in the runner (``preload``) and inherited by every child it forks
CLASSIFIERS: dict[str, object] = {}


def preload(model: str, tasks: list[str] | None = None) -> list[str]:
    """Load a classifier in the runner itself, so that its children predict without loading it again."""
    from tac_ecg_hf.inference import ECGTaskClassifier

    CLASSIFIERS[model] = ECGTaskClassifier.from_pretrained(model, tasks=tasks)
    return CLASSIFIERS[model].tasks


def _outcome(run) -> dict:
    from tac_ecg_hf.errors import bad_input_error_types

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            prediction = run()
        except bad_input_error_types() as err:
            return {"outcome": "refused", "type": type(err).__name__, "message": str(err)}
    probabilities = [float(p) for p in prediction.probabilities]
    return {
        "outcome": "predicted",
        "probabilities": [p if math.isfinite(p) else None for p in probabilities],
        "decision": list(prediction.decision),
        "notes": list(prediction.notes),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, UserWarning)],
    }


def predict_file(path: str, task: str, model: str, read_kwargs: dict | None = None) -> dict:
    """``read_record(path)`` then ``predict`` with the preloaded classifier of ``model`` (loaded here if none)."""
    from tac_ecg_hf.data import read_record
    from tac_ecg_hf.inference import ECGTaskClassifier

    def run():
        record = read_record(path, **(read_kwargs or {}))
        classifier = CLASSIFIERS.get(model) or ECGTaskClassifier.from_pretrained(model, tasks=[task])
        return classifier.predict(record, task=task)

    return _outcome(run)


def load_and_predict(model: str, record: str, task: str) -> dict:
    """``ECGTaskClassifier.from_pretrained(model)`` (every check of the encoder, adapter and preprocessor files) and
    one prediction on ``record``."""
    from tac_ecg_hf.inference import ECGTaskClassifier

    return _outcome(lambda: ECGTaskClassifier.from_pretrained(model, tasks=[task]).predict(record, task=task))


def warm_up(model: str, record: str, task: str) -> bool:
    """One load and prediction in the runner itself, so that what Python and torch initialise lazily on first use
    (modules imported inside functions, kernels) is done once and inherited by every child, not paid per case."""
    from tac_ecg_hf.inference import ECGTaskClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ECGTaskClassifier.from_pretrained(model, tasks=[task]).predict(record, task=task)
    return True


def predict_synthetic(model: str, seconds: float, task: str = "cpsc2018", sampling_rate: int = 100) -> dict:
    """Predict a synthetic 12-lead record of ``seconds`` (noise plus a 1 Hz beat) with ``model``: how many windows
    went through the model, and the probabilities."""
    import numpy as np

    from tac_ecg_hf.data import STANDARD_LEADS, ECGRecord
    from tac_ecg_hf.inference import ECGTaskClassifier

    rng = np.random.default_rng(0)
    n = int(seconds * sampling_rate)
    t = np.arange(n) / sampling_rate
    signal = (np.sin(2 * np.pi * t)[None] + 0.1 * rng.standard_normal((12, n))).astype(np.float32)
    record = ECGRecord(signal, sampling_rate, tuple(STANDARD_LEADS), f"synthetic-{seconds:g}s")
    classifier = CLASSIFIERS.get(model) or ECGTaskClassifier.from_pretrained(model, tasks=[task])
    prediction = classifier.predict(record, task=task)
    return {"windows": prediction.num_windows, "probabilities": [float(p) for p in prediction.probabilities]}
