"""The in-memory ECG record shared by all readers, the preprocessor and the dataset builders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..tasks import TaskSpec, get_task
from .errors import ECGInputError

__all__ = ["ECGRecord", "encode_labels"]


@dataclass
class ECGRecord:
    """One ECG recording.

    Attributes:
        signal: float32 array of shape ``(leads, samples)``, in ``units`` (mV for raw recordings,
            ``"normalized"`` for sources that ship z-scored signals such as the PTB-XL array file).
        sampling_rate: samples per second (Hz).
        lead_names: one name per row of ``signal`` (canonical names such as ``"aVL"`` where known).
        record_id: identifier used in error messages and as the dataset key.
        labels: label names: the source's own labels (codes or abbreviations such as ``("AF", "RBBB")``) from
            the database readers, whose ``task_labels`` maps them to a task's classes; empty when unlabelled.
        meta: free-form metadata (source path, age, sex, report text, SCP codes, split, ...).
        units: physical units of ``signal``.
    """

    signal: np.ndarray
    sampling_rate: float
    lead_names: tuple[str, ...]
    record_id: str
    labels: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    units: str = "mV"

    def __post_init__(self) -> None:
        rid = self.record_id = str(self.record_id)
        signal = np.asarray(self.signal)
        if signal.dtype.kind not in "fiub":
            raise ECGInputError(
                f"Record {rid!r}: signal has non-numeric dtype {signal.dtype}; pass a numeric array of shape "
                "(leads, samples)."
            )
        if signal.ndim == 1:
            signal = signal[None, :]
        if signal.ndim != 2:
            raise ECGInputError(
                f"Record {rid!r}: signal must have shape (leads, samples), got shape {signal.shape}."
            )
        self.signal = np.ascontiguousarray(signal, dtype=np.float32)
        if isinstance(self.lead_names, str):
            self.lead_names = (self.lead_names,)
        self.lead_names = tuple(str(name) for name in self.lead_names)
        if len(self.lead_names) != self.signal.shape[0]:
            raise ECGInputError(
                f"Record {rid!r}: {self.signal.shape[0]} signal rows but {len(self.lead_names)} lead names "
                f"{list(self.lead_names)}; the signal must be (leads, samples) with one name per lead "
                "(transpose time-first arrays)."
            )
        try:
            fs = float(self.sampling_rate)
        except (TypeError, ValueError):
            fs = float("nan")
        if not math.isfinite(fs) or fs <= 0:
            raise ECGInputError(
                f"Record {rid!r}: sampling_rate must be a positive number of Hz, got {self.sampling_rate!r}."
            )
        self.sampling_rate = fs
        if isinstance(self.labels, str):
            self.labels = (self.labels,)
        self.labels = tuple(str(label) for label in self.labels)
        self.meta = dict(self.meta) if self.meta is not None else {}

    @property
    def num_leads(self) -> int:
        return int(self.signal.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_samples / self.sampling_rate

    def __repr__(self) -> str:  # keep the (large) signal out of reprs and logs
        return (
            f"ECGRecord(record_id={self.record_id!r}, leads={list(self.lead_names)}, "
            f"samples={self.num_samples}, sampling_rate={self.sampling_rate:g}, units={self.units!r}, "
            f"labels={list(self.labels)})"
        )


def encode_labels(labels: Sequence[str], task: str | TaskSpec, record_id: str = "<unknown>") -> np.ndarray | int:
    """Encode label names for ``task``.

    Multi-label tasks give a float32 multi-hot vector of length ``task.num_labels`` (all zeros when
    ``labels`` is empty); single-label tasks give the class index and require exactly one label.
    Unknown names raise :class:`ECGInputError`.
    """
    spec = get_task(task) if isinstance(task, str) else task
    if isinstance(labels, str):
        labels = (labels,)
    label2id = spec.label2id
    unknown = [label for label in labels if label not in label2id]
    if unknown:
        raise ECGInputError(
            f"Record {record_id!r}: labels {unknown} are not in task {spec.name!r} "
            f"(expected some of {list(spec.labels)})."
        )
    if spec.multi_label:
        vector = np.zeros(spec.num_labels, dtype=np.float32)
        for label in labels:
            vector[label2id[label]] = 1.0
        return vector
    if len(set(labels)) != 1:
        raise ECGInputError(
            f"Record {record_id!r}: task {spec.name!r} is single-label but the record has labels {list(labels)}; "
            "exactly one is required."
        )
    return label2id[labels[0]]
