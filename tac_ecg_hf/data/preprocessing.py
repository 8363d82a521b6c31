"""Signal preprocessing: lead names and order, quality checks, resampling, cropping, normalisation.

The frozen encoders expect ``(12, 1000)`` float32 inputs: the 12 standard leads in
:data:`~tac_ecg_hf.tasks.STANDARD_LEADS` order, 100 Hz, 10 s, z-scored per lead.
:class:`ECGPreprocessor` turns any :class:`~tac_ecg_hf.data.record.ECGRecord` into that format.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from ..tasks import DEFAULT_NUM_SAMPLES, DEFAULT_SAMPLING_RATE, STANDARD_LEADS
from .errors import ECGInputError, ECGQualityWarning, ECGResamplingWarning
from .record import ECGRecord

__all__ = [
    "canonical_lead_name",
    "reorder_leads",
    "resample",
    "check_signal",
    "SignalQuality",
    "normalize_per_lead",
    "crop_or_pad",
    "ECGPreprocessor",
    "CROP_MODES",
]

CROP_MODES = ("center", "start", "random")

_CANONICAL_LEADS = {
    "i": "I",
    "ii": "II",
    "iii": "III",
    "avr": "aVR",
    "avl": "aVL",
    "avf": "aVF",
    **{f"v{i}": f"V{i}" for i in range(1, 10)},
    **{f"v{i}r": f"V{i}R" for i in range(1, 7)},
    "x": "X",
    "y": "Y",
    "z": "Z",
    # Holter / monitoring names for the limb leads ("modified lead II").
    "mli": "I",
    "mlii": "II",
    "mliii": "III",
}
# Names that only say "an ECG channel"; mapped to lead I only for single-lead recordings on request.
_GENERIC_SINGLE_LEAD = {"ecg", "ekg", "ecg1", "ekg1", "lead", "lead1", "signal", "sig", "ch1", "channel1", "0", "1"}
_SEPARATORS = re.compile(r"[\s_\-.]+")


def canonical_lead_name(name: str, single_lead: bool = False) -> str:
    """Return the canonical spelling of an ECG lead name.

    Case, blanks, ``_``/``-`` and a ``"lead"`` prefix are ignored: ``"AVL"`` -> ``"aVL"``,
    ``"avf"`` -> ``"aVF"``, ``"v1"`` -> ``"V1"``, ``"Lead II"`` -> ``"II"``, ``"MLII"`` -> ``"II"``.
    Generic names of a single channel (``"ECG"``, ``"lead1"``, ``"signal"``) become ``"I"`` only when
    ``single_lead=True``. Names that are not recognised are returned stripped but otherwise unchanged,
    so that :func:`reorder_leads` can report them.
    """
    if not isinstance(name, str):
        raise ECGInputError(f"Lead name must be a string, got {name!r} ({type(name).__name__}).")
    stripped = name.strip()
    key = _SEPARATORS.sub("", stripped).lower()
    if single_lead and key in _GENERIC_SINGLE_LEAD:
        return "I"
    if key in _CANONICAL_LEADS:
        return _CANONICAL_LEADS[key]
    if key.startswith("lead") and key[4:] in _CANONICAL_LEADS:
        return _CANONICAL_LEADS[key[4:]]
    return stripped


def _as_2d(signal: Any, record_id: str) -> np.ndarray:
    array = np.asarray(signal)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ECGInputError(f"Record {record_id!r}: signal must have shape (leads, samples), got shape {array.shape}.")
    if array.dtype.kind not in "fiub":
        raise ECGInputError(f"Record {record_id!r}: signal has non-numeric dtype {array.dtype}.")
    return array


def reorder_leads(
    signal: np.ndarray,
    lead_names: Sequence[str],
    target_leads: Sequence[str] = STANDARD_LEADS,
    record_id: str = "<unknown>",
    fill_missing: bool = False,
    *,
    ignore_extra: bool = False,
    return_mask: bool | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Reorder the rows of ``signal`` (leads, samples) by lead NAME into ``target_leads`` order.

    Names are compared after :func:`canonical_lead_name`. Duplicate names, leads that are not in
    ``target_leads`` (unless ``ignore_extra=True``, which drops them) and missing leads (unless
    ``fill_missing=True``, which zero-fills them) raise :class:`ECGInputError` listing the offending
    leads and the expected order.

    Returns the float32 array ``(len(target_leads), samples)``; with ``fill_missing=True`` (or
    ``return_mask=True``) returns ``(array, mask)`` where ``mask`` is a bool vector, True for leads
    present in the record.
    """
    array = _as_2d(signal, record_id)
    if isinstance(lead_names, str):
        lead_names = (lead_names,)
    if len(lead_names) != array.shape[0]:
        raise ECGInputError(
            f"Record {record_id!r}: {array.shape[0]} signal rows but {len(lead_names)} lead names {list(lead_names)}."
        )
    targets = [canonical_lead_name(n) for n in target_leads]
    if len(set(targets)) != len(targets):
        dupes = sorted({n for n in targets if targets.count(n) > 1})
        raise ECGInputError(f"target_leads contains duplicate leads {dupes}: {list(target_leads)}.")
    source = [canonical_lead_name(n) for n in lead_names]
    dupes = sorted({n for n in source if source.count(n) > 1})
    if dupes:
        raise ECGInputError(
            f"Record {record_id!r}: duplicate lead names {dupes} in {list(lead_names)}; each lead must appear once. "
            "Fix the lead names in the header/sidecar or pass lead_names= to the reader."
        )
    unknown = [raw for raw, n in zip(lead_names, source) if n not in targets]
    missing = [n for n in targets if n not in source]
    problems = []
    if unknown and not ignore_extra:
        problems.append(f"leads {unknown} are not among the expected leads")
    if missing and not fill_missing:
        problems.append(f"leads {missing} are missing")
    if problems:
        hints = []
        if unknown and not ignore_extra:
            hint = "rename them (pass lead_names= to the reader) or pass ignore_extra=True to drop them"
            if len(lead_names) == 1:
                hint += "; a generic single-lead name such as 'ECG' maps to 'I' via canonical_lead_name(name, single_lead=True)"
            hints.append(hint)
        if missing and not fill_missing:
            hints.append("pass fill_missing=True (ECGPreprocessor(fill_missing_leads=True)) to zero-fill missing leads")
        raise ECGInputError(
            f"Record {record_id!r}: {' and '.join(problems)}. Got leads {list(lead_names)}; expected, in this order, "
            f"{targets}. Fix: {'; '.join(hints)}."
        )
    out = np.zeros((len(targets), array.shape[1]), dtype=np.float32)
    mask = np.zeros(len(targets), dtype=bool)
    index = {n: i for i, n in enumerate(source)}
    for j, name in enumerate(targets):
        i = index.get(name)
        if i is not None:
            out[j] = array[i]
            mask[j] = True
    if return_mask is None:
        return_mask = fill_missing
    return (out, mask) if return_mask else out


def _rational_ratio(fs_in: float, fs_out: float, max_denominator: int) -> tuple[int, int]:
    ratio = Fraction(fs_out / fs_in).limit_denominator(max_denominator)
    if ratio.numerator == 0:
        raise ECGInputError(f"Cannot resample from {fs_in:g} Hz to {fs_out:g} Hz: the ratio is too small.")
    return ratio.numerator, ratio.denominator


def resample(
    signal: np.ndarray,
    fs_in: float,
    fs_out: float,
    *,
    record_id: str = "<unknown>",
    warn: bool = True,
    max_denominator: int = 1000,
) -> np.ndarray:
    """Resample ``signal`` (leads, samples) from ``fs_in`` to ``fs_out`` Hz along the last axis.

    Uses :func:`scipy.signal.resample_poly` (anti-aliasing FIR, polyphase) with the rational
    approximation ``up/down`` of ``fs_out/fs_in`` (denominator at most ``max_denominator``). Emits an
    :class:`ECGResamplingWarning` ("resampled from 500 Hz to 100 Hz") unless the rates are equal or
    ``warn=False``. Returns float32.
    """
    for label, fs in (("fs_in", fs_in), ("fs_out", fs_out)):
        if isinstance(fs, bool) or not isinstance(fs, numbers.Real) or not math.isfinite(fs) or fs <= 0:
            raise ECGInputError(f"Record {record_id!r}: {label} must be a positive number of Hz, got {fs!r}.")
    array = np.asarray(signal)
    if array.shape[-1] == 0:
        raise ECGInputError(f"Record {record_id!r}: cannot resample an empty signal (0 samples).")
    if float(fs_in) == float(fs_out):
        return array.astype(np.float32, copy=True)
    up, down = _rational_ratio(float(fs_in), float(fs_out), max_denominator)
    from scipy.signal import resample_poly

    out = resample_poly(array.astype(np.float64, copy=False), up, down, axis=-1)
    if warn:
        approx = "" if Fraction(up, down) == Fraction(float(fs_out)) / Fraction(float(fs_in)) else " (approximately)"
        warnings.warn(
            f"resampled from {fs_in:g} Hz to {fs_out:g} Hz{approx} (polyphase, up={up}, down={down})",
            ECGResamplingWarning,
            stacklevel=2,
        )
    return out.astype(np.float32)


class SignalQuality(NamedTuple):
    """Result of :func:`check_signal`: names (or indices) of flat and clipped leads."""

    flat_leads: tuple[str, ...]
    clipped_leads: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.flat_leads and not self.clipped_leads


def check_signal(
    signal: np.ndarray,
    record_id: str = "<unknown>",
    lead_names: Sequence[str] | None = None,
    *,
    flat_std: float = 1e-6,
    clip_fraction: float = 0.05,
    warn: bool = True,
) -> SignalQuality:
    """Validate a (leads, samples) signal.

    * Empty signals and NaN/inf samples raise :class:`ECGInputError` naming the leads and sample counts.
    * A lead with standard deviation below ``flat_std`` is *flat*; a non-flat lead with at least
      ``clip_fraction`` of its samples at its minimum or maximum value is *clipped*. Both emit an
      :class:`ECGQualityWarning` (unless ``warn=False``) and are returned in a :class:`SignalQuality`.
    """
    array = _as_2d(signal, record_id)
    n_leads, n_samples = array.shape
    names = [str(n) for n in lead_names] if lead_names is not None else [f"lead {i}" for i in range(n_leads)]
    if len(names) != n_leads:
        raise ECGInputError(f"Record {record_id!r}: {n_leads} signal rows but {len(names)} lead names {names}.")
    if n_leads == 0 or n_samples == 0:
        raise ECGInputError(
            f"Record {record_id!r}: empty signal of shape {array.shape}; a record needs at least one lead and one sample."
        )
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            parts = []
            for i in np.flatnonzero(~finite.all(axis=1)):
                row = array[i]
                counts = {"NaN": int(np.isnan(row).sum()), "+inf": int(np.isposinf(row).sum()), "-inf": int(np.isneginf(row).sum())}
                detail = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
                parts.append(f"{names[i]} ({detail})")
            raise ECGInputError(
                f"Record {record_id!r}: non-finite samples in {len(parts)} lead(s) of {n_samples} samples: "
                f"{'; '.join(parts)}. Fix: interpolate or crop the gaps, or drop the record "
                "(WFDB files mark missing samples with the format's invalid value, read as NaN)."
            )
    values = array.astype(np.float64, copy=False)
    std = values.std(axis=1)
    flat = std < flat_std
    lo = values.min(axis=1, keepdims=True)
    hi = values.max(axis=1, keepdims=True)
    at_rail = (values == lo).sum(axis=1) + (values == hi).sum(axis=1)
    clipped = ~flat & (at_rail >= clip_fraction * n_samples)
    quality = SignalQuality(
        flat_leads=tuple(names[i] for i in np.flatnonzero(flat)),
        clipped_leads=tuple(names[i] for i in np.flatnonzero(clipped)),
    )
    if warn and quality.flat_leads:
        warnings.warn(
            f"Record {record_id!r}: flat lead(s) {list(quality.flat_leads)} (standard deviation < {flat_std:g}); "
            "they will be all zeros after normalisation.",
            ECGQualityWarning,
            stacklevel=2,
        )
    if warn and quality.clipped_leads:
        warnings.warn(
            f"Record {record_id!r}: clipped lead(s) {list(quality.clipped_leads)} (>= {clip_fraction:.0%} of samples at "
            "the lead's minimum or maximum); amplifier saturation is likely.",
            ECGQualityWarning,
            stacklevel=2,
        )
    return quality


def normalize_per_lead(signal: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Z-score each lead (row) of a (leads, samples) signal; leads with std <= ``eps`` become all zeros."""
    values = np.asarray(signal, dtype=np.float64)
    mean = values.mean(axis=-1, keepdims=True)
    std = values.std(axis=-1, keepdims=True)
    flat = std <= eps
    out = (values - mean) / np.where(flat, 1.0, std)
    out = np.where(flat, 0.0, out)
    return out.astype(np.float32)


def crop_or_pad(
    signal: np.ndarray,
    length: int,
    mode: str = "center",
    rng: np.random.Generator | int | None = None,
    *,
    min_fraction: float = 0.0,
    record_id: str = "<unknown>",
) -> np.ndarray:
    """Return a float32 copy of ``signal`` with exactly ``length`` samples along the last axis.

    Longer signals are cropped (``mode``: ``"center"``, ``"start"`` or ``"random"``, the latter drawing
    the offset from ``rng``, a :class:`numpy.random.Generator` or seed). Shorter signals are padded
    with zeros at the end. Signals shorter than ``min_fraction * length`` raise :class:`ECGInputError`.
    """
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}.")
    if int(length) != length or length <= 0:
        raise ValueError(f"length must be a positive integer, got {length!r}.")
    length = int(length)
    array = np.asarray(signal)
    n = array.shape[-1]
    if n == 0 or n < min_fraction * length:
        raise ECGInputError(
            f"Record {record_id!r}: {n} samples, fewer than the required {min_fraction:.0%} of {length}; "
            "the record is too short. Lower min_fraction to pad it with zeros, or drop the record."
        )
    if n >= length:
        if mode == "start" or n == length:
            start = 0
        elif mode == "center":
            start = (n - length) // 2
        else:
            generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            start = int(generator.integers(0, n - length + 1))
        return array[..., start : start + length].astype(np.float32, copy=True)
    out = np.zeros(array.shape[:-1] + (length,), dtype=np.float32)
    out[..., :n] = array
    return out


@dataclass
class ECGPreprocessor:
    """Turn an :class:`ECGRecord` into the encoder input ``(len(target_leads), num_samples)`` float32.

    Steps: :func:`check_signal` (errors on NaN/inf, warns on flat/clipped leads) -> :func:`reorder_leads`
    (by name) -> :func:`resample` to ``sampling_rate`` -> :func:`crop_or_pad` to ``num_samples`` ->
    :func:`normalize_per_lead` (if ``normalize``).

    Args:
        target_leads: lead order of the output.
        sampling_rate: output sampling rate in Hz.
        num_samples: output length in samples.
        normalize: z-score each lead of the cropped window.
        crop: ``"center"``, ``"start"`` or ``"random"`` (uses ``seed``).
        fill_missing_leads: zero-fill leads the record lacks (e.g. single-lead sources) instead of raising.
        ignore_extra_leads: drop leads not in ``target_leads`` instead of raising.
        min_fraction: records shorter than this fraction of ``num_samples`` (after resampling) raise.
        check_quality: emit :class:`ECGQualityWarning` for flat/clipped leads.
        seed: seed of the generator used by ``crop="random"``.

    The settings round-trip through :meth:`to_dict` / :meth:`from_dict` (JSON-safe), so a model config
    can store them.
    """

    target_leads: tuple[str, ...] = STANDARD_LEADS
    sampling_rate: float = DEFAULT_SAMPLING_RATE
    num_samples: int = DEFAULT_NUM_SAMPLES
    normalize: bool = True
    crop: str = "center"
    fill_missing_leads: bool = False
    ignore_extra_leads: bool = False
    min_fraction: float = 0.0
    check_quality: bool = True
    seed: int | None = None
    _rng: np.random.Generator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.target_leads, str):
            self.target_leads = (self.target_leads,)
        self.target_leads = tuple(canonical_lead_name(n) for n in self.target_leads)
        if not self.target_leads or len(set(self.target_leads)) != len(self.target_leads):
            raise ValueError(f"target_leads must be non-empty and without duplicates, got {list(self.target_leads)}.")
        if (
            isinstance(self.sampling_rate, bool)
            or not isinstance(self.sampling_rate, numbers.Real)
            or not math.isfinite(self.sampling_rate)
            or self.sampling_rate <= 0
        ):
            raise ValueError(f"sampling_rate must be a positive number of Hz, got {self.sampling_rate!r}.")
        self.sampling_rate = float(self.sampling_rate) if not float(self.sampling_rate).is_integer() else int(self.sampling_rate)
        if (
            isinstance(self.num_samples, bool)
            or not isinstance(self.num_samples, numbers.Real)
            or int(self.num_samples) != self.num_samples
            or self.num_samples <= 0
        ):
            raise ValueError(f"num_samples must be a positive integer, got {self.num_samples!r}.")
        self.num_samples = int(self.num_samples)
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {self.crop!r}.")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1], got {self.min_fraction!r}.")
        self._rng = np.random.default_rng(self.seed)

    # -- core -------------------------------------------------------------------------------------
    def _prepare(self, record: ECGRecord) -> tuple[np.ndarray, np.ndarray]:
        """check -> reorder -> resample; returns the full-length signal and the lead mask."""
        if not isinstance(record, ECGRecord):
            raise TypeError(f"ECGPreprocessor expects an ECGRecord, got {type(record).__name__}.")
        rid = record.record_id
        check_signal(record.signal, rid, record.lead_names, warn=self.check_quality)
        signal, mask = reorder_leads(
            record.signal,
            record.lead_names,
            self.target_leads,
            rid,
            fill_missing=self.fill_missing_leads,
            ignore_extra=self.ignore_extra_leads,
            return_mask=True,
        )
        signal = resample(signal, record.sampling_rate, self.sampling_rate, record_id=rid)
        return signal, mask

    def _finish(self, window: np.ndarray) -> np.ndarray:
        return normalize_per_lead(window) if self.normalize else window.astype(np.float32, copy=False)

    def process(self, record: ECGRecord) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`__call__` but also returns the bool mask of leads present in the record."""
        signal, mask = self._prepare(record)
        window = crop_or_pad(
            signal, self.num_samples, self.crop, self._rng, min_fraction=self.min_fraction, record_id=record.record_id
        )
        return self._finish(window), mask

    def __call__(self, record: ECGRecord) -> np.ndarray:
        """Return the preprocessed float32 array ``(len(target_leads), num_samples)``."""
        return self.process(record)[0]

    def windows(
        self, record: ECGRecord, stride: int | None = None, *, return_starts: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Cut a long record into fixed-length windows, e.g. to average predictions over a 60 s record.

        Windows of ``num_samples`` (at ``sampling_rate``) start every ``stride`` samples (default:
        ``num_samples``, no overlap); if the last regular window does not reach the end, one more window
        aligned to the end is added, so every sample is covered. A record shorter than one window gives
        one zero-padded window. Each window is normalised on its own.

        Returns float32 ``(n_windows, len(target_leads), num_samples)``; with ``return_starts=True``
        also the start offsets in output samples.
        """
        stride = self.num_samples if stride is None else stride
        if isinstance(stride, bool) or int(stride) != stride or stride <= 0:
            raise ValueError(f"stride must be a positive integer number of samples, got {stride!r}.")
        stride = int(stride)
        signal, _ = self._prepare(record)
        n, length = signal.shape[-1], self.num_samples
        if n <= length:
            starts = [0]
            chunks = [crop_or_pad(signal, length, "start", min_fraction=self.min_fraction, record_id=record.record_id)]
        else:
            starts = list(range(0, n - length + 1, stride))
            if starts[-1] != n - length:
                starts.append(n - length)
            chunks = [signal[:, s : s + length] for s in starts]
        out = np.stack([self._finish(chunk) for chunk in chunks]).astype(np.float32, copy=False)
        return (out, np.asarray(starts, dtype=np.int64)) if return_starts else out

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe settings (lists instead of tuples), for storing in a model config."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> "ECGPreprocessor":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ValueError`, missing keys take defaults."""
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"Unknown ECGPreprocessor settings {unknown}; known settings: {sorted(known)}.")
        kwargs = dict(settings)
        if "target_leads" in kwargs:
            kwargs["target_leads"] = tuple(kwargs["target_leads"])
        return cls(**kwargs)
