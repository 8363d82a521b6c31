"""The ECG feature extractor: the one definition of preprocessing
(:class:`~tac_ecg_hf.data.preprocessing.ECGPreprocessor`) with transformers' feature-extractor machinery, saved
with every model as ``preprocessor_config.json``.

transformers' audio-classification example is the model: one extractor, saved with the model, used by the dataset
transform, by ``Trainer(processing_class=...)`` and by inference alike. The steps are in ``preprocessing.py``.

This file (and ``preprocessing.py`` and ``errors.py``, its relative imports) is copied next to a saved checkpoint
(``trust_remote_code``), so it imports only numpy, scipy, transformers and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature

from .errors import ECGInputError
from .preprocessing import (  # noqa: F401  (re-exported: the names this module always had)
    _OWN_KEYS,
    _TRANSFORMERS_KEYS,
    CROP_MODES,
    MAX_LEADS,
    MAX_NUM_SAMPLES,
    MAX_PREPARED_VALUES,
    STANDARD_LEADS,
    ECGPreprocessor,
    PreparedECG,
    _is_real,
    canonical_lead_name,
)


class ECGFeatureExtractor(ECGPreprocessor, SequenceFeatureExtractor):
    r"""
    Turns ECG recordings into the encoder's ``input_values`` ``(windows, leads, num_samples)``: leads by name,
    resampling, band-pass, fixed-length windows and per-lead normalisation. The settings and steps are
    :class:`ECGPreprocessor`'s (see its docstring for the arguments); this class adds transformers' saving and loading
    (``save_pretrained`` / ``from_pretrained`` / ``AutoFeatureExtractor``) and ``__call__``.

    Example:
        >>> fe = ECGFeatureExtractor()
        >>> batch = fe(signal, sampling_rate=500, lead_names=["I", "II", ...], return_tensors="pt")
        >>> model(**batch).logits
    """

    model_input_names = ["input_values"]

    def _init_base(self, feature_size: int, sampling_rate: int, padding_value: float, **kwargs) -> None:
        SequenceFeatureExtractor.__init__(
            self, feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs
        )

    # -- the transformers entry point ---------------------------------------------------------------------------------
    def __call__(
        self,
        ecg: Any,
        sampling_rate: float | Sequence[float] | None = None,
        lead_names: Sequence[str] | Sequence[Sequence[str]] | None = None,
        *,
        windows: str = "all",
        crop: str | None = None,
        stride: int | None = None,
        return_tensors: str | None = None,
        rng: np.random.Generator | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Preprocess one recording or a list of them.

        Args:
            ecg: an ``ECGRecord``, a ``(leads, samples)`` array/tensor/list, or a list of those.
            sampling_rate: the input's sampling rate (one value, or one per recording); records carry their own.
            lead_names: the input's lead names (one list, or one per recording); records carry their own.
            windows: ``"all"``: every inference window (``window_record`` maps windows to recordings, ``num_windows``
                counts them) for averaging; ``"one"``: one crop per recording (``crop``), e.g. in a training transform.
            return_tensors: ``"pt"``, ``"np"`` or ``None``.

        Returns a ``BatchFeature`` with ``input_values`` ``(windows, leads, num_samples)`` float32, ``window_record``,
        ``num_windows`` and ``notes`` (one list of strings per recording, never converted to tensors).
        """
        if windows not in ("all", "one"):
            raise ValueError(f"windows must be 'all' or 'one', got {windows!r}.")
        if kwargs:
            raise TypeError(f"ECGFeatureExtractor.__call__ got unexpected arguments {sorted(kwargs)}.")
        items = self._as_batch(ecg, sampling_rate, lead_names)
        values, owners, counts, notes = [], [], [], []
        for i, (item, fs, names) in enumerate(items):
            prepared = self.prepare(item, sampling_rate=fs, lead_names=names)
            record_notes = list(prepared.notes)
            pad = self.padding_note(prepared)
            if pad:
                record_notes.append(pad)
            if windows == "one":
                chunk = self.crop_window(prepared, crop, rng)[None]
            else:
                chunk = np.concatenate(list(self.iter_windows(prepared, stride=stride)))
            values.append(chunk)
            owners.append(np.full(len(chunk), i, dtype=np.int64))
            counts.append(len(chunk))
            notes.append(record_notes)
        data = {
            "input_values": np.concatenate(values).astype(np.float32, copy=False),
            "window_record": np.concatenate(owners),
            "num_windows": np.asarray(counts, dtype=np.int64),
            "notes": notes,
        }
        return BatchFeature(data, tensor_type=return_tensors, skip_tensor_conversion={"notes"})

    @staticmethod
    def _as_batch(ecg, sampling_rate, lead_names) -> list[tuple[Any, Any, Any]]:
        is_record = hasattr(ecg, "signal")
        is_array = hasattr(ecg, "shape") and len(getattr(ecg, "shape", ())) in (1, 2)
        if is_record or is_array or (isinstance(ecg, (list, tuple)) and ecg and _is_real(ecg[0])):
            return [(ecg, sampling_rate, lead_names)]
        if (
            isinstance(ecg, (list, tuple))
            and ecg
            and isinstance(ecg[0], (list, tuple))
            and ecg[0]
            and _is_real(ecg[0][0])
        ):
            return [(ecg, sampling_rate, lead_names)]  # one nested-list (leads, samples) signal
        if not isinstance(ecg, (list, tuple)) or not ecg:
            raise ECGInputError(
                "Expected an ECG record, a (leads, samples) array or a non-empty list of them, got "
                f"{type(ecg).__name__}."
            )
        n = len(ecg)
        rates = list(sampling_rate) if isinstance(sampling_rate, (list, tuple, np.ndarray)) else [sampling_rate] * n
        if lead_names is not None and len(lead_names) and isinstance(lead_names[0], (list, tuple)):
            names = list(lead_names)
        else:
            names = [lead_names] * n
        if len(rates) != n or len(names) != n:
            raise ECGInputError(f"{n} recordings but {len(rates)} sampling rates and {len(names)} lead-name lists.")
        return list(zip(ecg, rates, names))
