"""ECG preprocessing, the one definition: the steps of the feature extractor saved with every model as
``preprocessor_config.json`` (:class:`~tac_ecg_hf.data.ECGFeatureExtractor` is :class:`ECGPreprocessor` plus
transformers' feature-extractor machinery). It turns any recording (any lead order, sampling rate and length) into
what the encoder was trained on:
1. **check** the signal: numeric, finite (NaN/inf are refused, naming the leads), a sampling rate in
   ``[min_sampling_rate, max_sampling_rate]`` and a duration of at most ``max_duration`` seconds;
2. **leads by name**: the model's ``lead_names`` order; the leads the model reads are ``input_leads`` (default all of
   them; ``["I"]`` for a single-lead task). A missing limb lead is derived from two others (Einthoven/Goldberger) with
   a note, any other missing lead is refused, naming it. Model leads outside ``input_leads`` are zero (that is how such
   an adapter was trained); record leads the model does not read are dropped with a note;
3. **resample** to ``sampling_rate`` (polyphase, anti-aliased);
4. **band-pass** ``bandpass`` Hz (zero-phase Butterworth, ``filter_order``; the PTB-XL training arrays were band-passed
   0.5-40 Hz upstream, so inference must be too);
5. **windows** of ``num_samples``: every ``window_stride`` samples plus one aligned to the end (inference: the
   probabilities of all windows are averaged), or one crop (``crop="random"`` for training); a record shorter than a
   window is refused below ``min_duration`` seconds and zero-padded otherwise, with a note saying how much;
6. **normalise** each lead of each window (z-score over its real samples; padding stays 0).

This file is copied next to a saved checkpoint with ``feature_extraction_ecg.py`` (``trust_remote_code``), so it
imports only numpy, scipy, the standard library and ``errors.py``. It does not import transformers: the command
line's single prediction runs without it (``tac_ecg_hf.lite``).
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import ECGConfigError, ECGInputError

STANDARD_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]

#: sanity bounds of the settings (a config outside them is refused before anything is allocated)
MAX_NUM_SAMPLES = 1_000_000
MAX_LEADS = 64
#: most values (leads x samples) a prepared record may hold: 1 GiB of float32, 62 h of 12-lead ECG at 100 Hz. Checked
#: before resampling, whatever ``max_duration`` and the sampling rates say.
MAX_PREPARED_VALUES = 1 << 28
CROP_MODES = ("center", "start", "random")


# ---------------------------------------------------------------------------------------------------------------------
# lead names

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
    "vx": "X",
    "vy": "Y",
    "vz": "Z",
    # Holter / monitoring names of the limb leads ("modified lead II")
    "mli": "I",
    "mlii": "II",
    "mliii": "III",
}
# Names that only say "an ECG channel": read as lead I for single-lead recordings given to a lead-I model.
_GENERIC_SINGLE_LEAD = {"ecg", "ekg", "ecg1", "ekg1", "lead", "lead1", "signal", "sig", "ch1", "channel1", "0", "1"}
_SEPARATORS = re.compile(r"[\s_\-.]+")

# Limb leads from two others (Einthoven: III = II - I; Goldberger's augmented leads).
_LIMB_FORMULAS = {
    "I": (("II", "III"), lambda ii, iii: ii - iii),
    "II": (("I", "III"), lambda i, iii: i + iii),
    "III": (("I", "II"), lambda i, ii: ii - i),
    "aVR": (("I", "II"), lambda i, ii: -(i + ii) / 2),
    "aVL": (("I", "II"), lambda i, ii: i - ii / 2),
    "aVF": (("I", "II"), lambda i, ii: ii - i / 2),
}


def canonical_lead_name(name: str, single_lead: bool = False) -> str:
    """Canonical spelling of a lead name: case, blanks, ``_``/``-`` and a ``lead`` prefix are ignored (``"AVL"`` ->
    ``"aVL"``, ``"Lead II"`` -> ``"II"``, ``"MLII"`` -> ``"II"``). Generic names of a single channel (``"ECG"``) become
    ``"I"`` only with ``single_lead=True``. Unknown names come back stripped, so that errors can name them."""
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


#: records of at most this many values are resampled in one call (float64 temporaries of at most 32 MiB); longer
#: ones lead by lead. Both give the same values; one call designs the anti-aliasing filter once instead of per lead.
_BATCHED_RESAMPLE_VALUES = 1 << 22


@functools.lru_cache(maxsize=64)
def _butter_bandpass(order: int, low: float, high: float, fs: float) -> np.ndarray:
    """Second-order sections of the Butterworth band-pass, designed once per (order, band, rate): an archive has a
    few sampling rates, and the design costs about a third of a millisecond each time."""
    from scipy.signal import butter

    return butter(order, [low, high], btype="bandpass", fs=fs, output="sos")


# ---------------------------------------------------------------------------------------------------------------------
# one prepared record


@dataclass
class PreparedECG:
    """A record after the record-level steps (leads, resampling, band-pass), before windowing and normalisation.

    Attributes:
        signal: float32 ``(len(lead_names), samples)`` at the extractor's sampling rate, in the model's lead order
            (leads the model does not read are zero).
        record_id: the record's id, for messages.
        notes: what was done that a user should know (derived leads, dropped leads, resampling, padding, quality).
    """

    signal: np.ndarray
    record_id: str = "<array>"
    notes: list[str] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return int(self.signal.shape[-1])


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _lead_list(key: str, value: Any) -> list[str]:
    """A setting that lists lead names (``lead_names``, ``input_leads``), checked before anything uses it."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ECGConfigError(
            f"ECGFeatureExtractor: {key} must be a list of lead names, got {_short(value)}. Fix it in "
            "preprocessor_config.json or the constructor call."
        )
    return list(value)


class ECGPreprocessor:
    r"""
    The preprocessing of :class:`~tac_ecg_hf.data.ECGFeatureExtractor` without transformers: the same settings,
    checks and steps (``prepare``, ``iter_windows``, ``crop_window``...), for code that must not import transformers
    (``tac_ecg_hf.lite``, the command line's single prediction). ``ECGFeatureExtractor`` is this class plus
    transformers' ``SequenceFeatureExtractor`` (saving, loading, ``__call__`` returning a ``BatchFeature``).

    Turns ECG recordings into the encoder's ``input_values`` ``(windows, leads, num_samples)``: leads by name,
    resampling, band-pass, fixed-length windows and per-lead normalisation (see the module docstring).

    Args:
        lead_names (`list[str]`, *optional*): the model's input leads in order (default: the 12 standard leads).
        sampling_rate (`int`): the model's sampling rate in Hz.
        num_samples (`int`): the model's window length in samples.
        window_stride (`int`, *optional*): distance between inference windows (default ``num_samples``: no overlap).
        bandpass (`list[float]`, *optional*): ``[low, high]`` Hz of the zero-phase Butterworth band-pass; ``None``:
        none.
        filter_order (`int`): Butterworth order (the zero-phase filter applies it twice).
        normalize (`bool`): z-score each lead of each window.
        input_leads (`list[str]`, *optional*): the leads the model reads (default: all ``lead_names``); the others are
            zero, as in training. ``["I"]`` for a single-lead task.
        derive_limb_leads (`bool`): derive a missing limb lead (I, II, III, aVR, aVL, aVF) from two others.
        min_duration (`float`): records shorter than this (seconds) are refused; shorter than a window, they are
        padded.
        max_duration (`float`): records longer than this (seconds) are refused (bounds time and memory).
        min_sampling_rate, max_sampling_rate (`float`): accepted input sampling rates in Hz.
        crop (`str`): ``"center"``, ``"start"`` or ``"random"``: the window taken when one window per record is asked
        for.

    Example:
        >>> fe = ECGFeatureExtractor()
        >>> batch = fe(signal, sampling_rate=500, lead_names=["I", "II", ...], return_tensors="pt")
        >>> model(**batch).logits
    """

    model_input_names = ["input_values"]

    def __init__(
        self,
        lead_names: Sequence[str] | None = None,
        sampling_rate: int = 100,
        num_samples: int = 1000,
        window_stride: int | None = None,
        bandpass: Sequence[float] | None = (0.5, 40.0),
        filter_order: int = 2,
        normalize: bool = True,
        input_leads: Sequence[str] | None = None,
        derive_limb_leads: bool = True,
        min_duration: float = 5.0,
        max_duration: float = 24 * 3600.0,
        min_sampling_rate: float = 50.0,
        max_sampling_rate: float = 20_000.0,
        crop: str = "center",
        padding_value: float = 0.0,
        **kwargs,
    ):
        kwargs.pop("feature_size", None)  # derived from lead_names
        unknown = sorted(k for k in kwargs if not k.startswith("_") and k not in _TRANSFORMERS_KEYS)
        if unknown:
            raise ECGConfigError(
                f"ECGFeatureExtractor: unknown setting(s) {unknown}; known: {sorted(_OWN_KEYS)}. Fix the names in "
                "preprocessor_config.json (unknown settings are refused because they would be silently ignored)."
            )
        lead_names = _lead_list("lead_names", STANDARD_LEADS if lead_names is None else lead_names)
        self._init_base(feature_size=len(lead_names), sampling_rate=sampling_rate, padding_value=padding_value,
                        **kwargs)
        self.lead_names = lead_names
        self.num_samples = num_samples
        self.window_stride = window_stride
        self.bandpass = list(bandpass) if isinstance(bandpass, (list, tuple)) else bandpass
        self.filter_order = filter_order
        self.normalize = normalize
        self.input_leads = _lead_list("input_leads", input_leads) if input_leads is not None else None
        self.derive_limb_leads = derive_limb_leads
        self.min_duration = min_duration
        self.max_duration = max_duration
        self.min_sampling_rate = min_sampling_rate
        self.max_sampling_rate = max_sampling_rate
        self.crop = crop
        self._validate()

    # -- settings -----------------------------------------------------------------------------------------------------
    def _validate(self) -> None:
        def bad(what: str) -> ECGConfigError:
            return ECGConfigError(
                f"ECGFeatureExtractor: {what}. Fix it in preprocessor_config.json or the constructor call."
            )

        names = [canonical_lead_name(n) for n in self.lead_names]
        if not 1 <= len(names) <= MAX_LEADS or len(set(names)) != len(names):
            raise bad(f"lead_names must be 1-{MAX_LEADS} distinct lead names, got {_short(self.lead_names)}")
        self.lead_names = names
        if self.input_leads is not None:
            self.input_leads = [canonical_lead_name(n) for n in self.input_leads]
            outside = [n for n in self.input_leads if n not in names]
            if not self.input_leads or outside or len(set(self.input_leads)) != len(self.input_leads):
                raise bad(
                    f"input_leads must be distinct leads among lead_names {names}, got {_short(self.input_leads)}"
                )
        for key in ("sampling_rate", "num_samples", "filter_order"):
            value = getattr(self, key)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
                raise bad(f"{key} must be a positive integer, got {_short(value)}")
        if self.num_samples > MAX_NUM_SAMPLES:
            raise bad(f"num_samples={self.num_samples} exceeds the maximum {MAX_NUM_SAMPLES}")
        if self.filter_order > 8:
            raise bad(
                f"filter_order={self.filter_order} exceeds 8 (a high-order IIR band-pass is numerically unstable)"
            )
        if self.window_stride is not None and (
            not isinstance(self.window_stride, numbers.Integral) or not 0 < self.window_stride <= self.num_samples
        ):
            raise bad(
                f"window_stride must be an integer in [1, num_samples={self.num_samples}], "
                f"got {_short(self.window_stride)}"
            )
        for key in ("min_duration", "max_duration", "min_sampling_rate", "max_sampling_rate"):
            if not _is_real(getattr(self, key)) or getattr(self, key) <= 0:
                raise bad(f"{key} must be a positive number, got {_short(getattr(self, key))}")
        if self.min_duration > self.max_duration or self.min_sampling_rate > self.max_sampling_rate:
            raise bad("min_duration/min_sampling_rate must not exceed max_duration/max_sampling_rate")
        if not _is_real(self.padding_value):
            raise bad(f"padding_value must be a finite number, got {_short(self.padding_value)}")
        if self.bandpass is not None:
            pair = isinstance(self.bandpass, list) and len(self.bandpass) == 2
            if not pair or not all(_is_real(f) for f in self.bandpass):
                raise bad(f"bandpass must be [low, high] in Hz or null, got {_short(self.bandpass)}")
            low, high = (float(f) for f in self.bandpass)
            if not 0 < low < high < self.sampling_rate / 2:
                raise bad(
                    f"bandpass must satisfy 0 < low < high < sampling_rate/2 = {self.sampling_rate / 2:g}, got "
                    f"{self.bandpass}"
                )
            self.bandpass = [low, high]
        if self.crop not in CROP_MODES:
            raise bad(f"crop must be one of {CROP_MODES}, got {_short(self.crop)}")
        if not isinstance(self.normalize, bool) or not isinstance(self.derive_limb_leads, bool):
            raise bad("normalize and derive_limb_leads must be true or false")

    @property
    def read_leads(self) -> list[str]:
        """The leads the model reads (``input_leads`` or all ``lead_names``)."""
        return list(self.input_leads or self.lead_names)

    @property
    def stride(self) -> int:
        return int(self.window_stride or self.num_samples)

    @property
    def window_seconds(self) -> float:
        return self.num_samples / self.sampling_rate

    def settings(self) -> dict[str, Any]:
        """The preprocessing settings alone (what ``preprocessor_config.json`` holds minus transformers' bookkeeping
        such as ``feature_extractor_type`` or ``auto_map``): two extractors with equal settings preprocess alike."""
        return {k: getattr(self, k) for k in sorted(_OWN_KEYS)}

    def _init_base(self, feature_size: int, sampling_rate: int, padding_value: float, **kwargs) -> None:
        """The fields transformers' ``SequenceFeatureExtractor.__init__`` sets (``ECGFeatureExtractor`` calls it);
        transformers' own bookkeeping keys (``feature_extractor_type``...) mean nothing here."""
        self.feature_size = feature_size
        self.sampling_rate = sampling_rate
        self.padding_value = padding_value

    # -- record level -------------------------------------------------------------------------------------------------
    def prepare(
        self,
        ecg: Any,
        sampling_rate: float | None = None,
        lead_names: Sequence[str] | None = None,
        record_id: str | None = None,
    ) -> PreparedECG:
        """Check, order the leads, resample and band-pass one recording.

        ``ecg`` is an ``ECGRecord`` (or any object with ``signal``, ``sampling_rate`` and ``lead_names``), or a
        ``(leads, samples)`` array / tensor / nested list with ``sampling_rate`` and ``lead_names``.
        """
        signal, fs, names, rid = self._unpack(ecg, sampling_rate, lead_names, record_id)
        notes: list[str] = []
        self._check_rate_and_length(signal, fs, rid)
        signal, notes_leads = self._select_leads(signal, names, rid)
        notes += notes_leads
        self._check_values(signal, rid, notes)
        if self.bandpass is not None:
            signal = self._band_pass(signal, fs)
        signal = self._resample(signal, fs, rid, notes)
        full = np.zeros((len(self.lead_names), signal.shape[-1]), dtype=np.float32)
        for row, name in zip(signal, self.read_leads):
            full[self.lead_names.index(name)] = row
        return PreparedECG(signal=full, record_id=rid, notes=notes)

    def _unpack(self, ecg, sampling_rate, lead_names, record_id):
        if hasattr(ecg, "signal") and hasattr(ecg, "sampling_rate") and hasattr(ecg, "lead_names"):
            if sampling_rate is not None and not math.isclose(float(sampling_rate), float(ecg.sampling_rate)):
                raise ECGInputError(
                    f"Record {ecg.record_id!r} says {float(ecg.sampling_rate):g} Hz but "
                    f"sampling_rate={sampling_rate!r} was passed; drop the argument or fix the record."
                )
            signal, fs = ecg.signal, ecg.sampling_rate
            names = list(lead_names) if lead_names is not None else list(ecg.lead_names)
            rid = str(record_id or getattr(ecg, "record_id", "<record>"))
        else:
            rid = str(record_id or "<array>")
            if sampling_rate is None or lead_names is None:
                raise ECGInputError(
                    f"Record {rid}: an array needs sampling_rate=<Hz> and lead_names=[one name per row]; "
                    "or pass an ECGRecord (tac_ecg_hf.data.read_record reads files)."
                )
            signal, fs, names = ecg, sampling_rate, list(lead_names)
        if hasattr(signal, "detach"):  # a torch tensor
            signal = signal.detach().cpu().numpy()
        try:
            array = np.asarray(signal)
        except (TypeError, ValueError) as err:
            raise ECGInputError(f"Record {rid}: the signal is not a numeric array ({err}).") from None
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.dtype.kind not in "fiub":
            raise ECGInputError(
                f"Record {rid}: the signal must be a numeric (leads, samples) array, got shape {array.shape} "
                f"dtype {array.dtype}."
            )
        if isinstance(names, str):
            names = [names]
        if len(names) != array.shape[0]:
            hint = " It looks time-first: transpose it." if array.shape[1] == len(names) else ""
            raise ECGInputError(
                f"Record {rid}: {array.shape[0]} signal rows but {len(names)} lead names {names}; the signal must be "
                f"(leads, samples) with one name per row.{hint}"
            )
        try:
            fs = float(fs)
        except (TypeError, ValueError):
            fs = math.nan
        return array, fs, [str(n) for n in names], rid

    def _check_rate_and_length(self, signal: np.ndarray, fs: float, rid: str) -> None:
        if not math.isfinite(fs) or fs <= 0:
            raise ECGInputError(f"Record {rid}: sampling rate must be a positive number of Hz, got {fs!r}.")
        if not self.min_sampling_rate <= fs <= self.max_sampling_rate:
            raise ECGInputError(
                f"Record {rid}: sampling rate {fs:g} Hz is outside the {self.min_sampling_rate:g}-"
                f"{self.max_sampling_rate:g} Hz an ECG is recorded at; check the header's sampling frequency (or "
                "--fs)."
            )
        n = signal.shape[-1]
        if n == 0:
            raise ECGInputError(f"Record {rid}: the signal is empty (0 samples).")
        duration = n / fs
        if duration > self.max_duration:
            raise ECGInputError(
                f"Record {rid}: {duration:.0f} s long at {fs:g} Hz, more than the {self.max_duration:.0f} s this "
                "extractor accepts; split the record, or raise max_duration if the sampling rate is right."
            )
        prepared = math.ceil(n * self.sampling_rate / fs) * len(self.lead_names)
        if prepared > MAX_PREPARED_VALUES:
            raise ECGInputError(
                f"Record {rid}: {n} samples at {fs:g} Hz would become {prepared:,} values at {self.sampling_rate} Hz, "
                f"more than the {MAX_PREPARED_VALUES:,} one record may take; split the record or check its sampling "
                "rate."
            )
        if duration < self.min_duration:
            raise ECGInputError(
                f"Record {rid}: {duration:.2f} s long, shorter than the {self.min_duration:g} s minimum (the model's "
                "window "
                f"is {self.window_seconds:g} s); a shorter record would be mostly padding. Use a longer recording."
            )

    def _select_leads(self, signal: np.ndarray, names: list[str], rid: str) -> tuple[np.ndarray, list[str]]:
        notes = []
        wanted = self.read_leads
        single = len(names) == 1 and wanted == ["I"]
        canonical = [canonical_lead_name(n, single_lead=single) for n in names]
        if single and canonical[0] != canonical_lead_name(names[0]):
            notes.append(f"the single lead {names[0]!r} was read as lead I")
        dupes = sorted({n for n in canonical if canonical.count(n) > 1})
        if dupes:
            raise ECGInputError(
                f"Record {rid}: duplicate lead names {dupes} in {names}; each lead must appear once. "
                "Fix the lead names in the header, or pass lead_names=[...] (--leads in the CLI)."
            )
        index = {n: i for i, n in enumerate(canonical)}
        rows, derived = [], []
        for name in wanted:
            if name in index:
                rows.append(signal[index[name]].astype(np.float32))
                continue
            formula = _LIMB_FORMULAS.get(name) if self.derive_limb_leads else None
            if formula is not None and all(src in index for src in formula[0]):
                a, b = (signal[index[src]].astype(np.float32) for src in formula[0])
                rows.append(formula[1](a, b).astype(np.float32))
                derived.append(f"{name} = f({', '.join(formula[0])})")
                continue
            raise ECGInputError(
                f"Record {rid}: lead {name} is missing; this model reads {wanted} and the record has {names}. "
                "Rename the leads (--leads / lead_names=) if they are mislabelled, or use a model trained on the "
                "leads you have."
            )
        if derived:
            notes.append(f"derived missing limb lead(s) from the others: {'; '.join(derived)}")
        unused = [raw for raw, n in zip(names, canonical) if n not in wanted]
        if unused:
            if self.input_leads is not None and len(wanted) < len(self.lead_names):
                notes.append(f"this model reads only lead(s) {wanted}; ignored {len(unused)} other lead(s) {unused}")
            else:
                notes.append(f"ignored lead(s) {unused}: not among the model's leads {self.lead_names}")
        return np.stack(rows), notes

    @staticmethod
    def _check_values(signal: np.ndarray, rid: str, notes: list[str]) -> None:
        finite = np.isfinite(signal)
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.all(axis=1))
            counts = ", ".join(f"row {i}: {int((~finite[i]).sum())}" for i in bad_rows[:12])
            raise ECGInputError(
                f"Record {rid}: non-finite samples (NaN/inf) in {len(bad_rows)} lead(s) ({counts}). Interpolate or "
                "crop "
                "the gaps, or drop the record (WFDB files mark missing samples with an invalid value, read as NaN)."
            )
        std = signal.std(axis=1)
        flat = np.flatnonzero(std < 1e-6)
        if len(flat):
            notes.append(f"{len(flat)} flat lead(s) (no signal); they are zero after normalisation")

    def _resample(self, signal: np.ndarray, fs: float, rid: str, notes: list[str]) -> np.ndarray:
        if fs == self.sampling_rate:
            return signal
        ratio = Fraction(self.sampling_rate / fs).limit_denominator(1000)
        up, down = ratio.numerator, ratio.denominator
        if up == 0 or up > 10_000 or down > 10_000:
            raise ECGInputError(
                f"Record {rid}: cannot resample {fs:g} Hz to {self.sampling_rate} Hz (ratio {up}/{down})."
            )
        from scipy.signal import resample_poly

        if signal.size <= _BATCHED_RESAMPLE_VALUES:  # all leads in one call: the filter is designed once
            out = resample_poly(signal.astype(np.float64), up, down, axis=-1).astype(np.float32)
        else:  # one lead at a time keeps the float64 temporaries of a long record to one lead's length
            out = np.stack([resample_poly(row.astype(np.float64), up, down).astype(np.float32) for row in signal])
        # resampling itself is routine; an inexact ratio is not
        if Fraction(self.sampling_rate) / Fraction(fs) != ratio:
            notes.append(f"resampled from {fs:g} Hz to {self.sampling_rate} Hz approximately (ratio {up}/{down})")
        return out

    def _band_pass(self, signal: np.ndarray, fs: float) -> np.ndarray:
        """Zero-phase Butterworth band-pass at the record's own rate, before resampling, so that mains hum (50/60 Hz)
        is removed before it could alias. The edges are extended by a 1 s reflection ("even" padding): measured on the
        raw PTB-XL records, it keeps a record and its band-passed copy within 0.02 in probability, where the default
        odd extension left 0.08 near a record's end."""
        from scipy.signal import sosfiltfilt

        low, high = self.bandpass
        # a copy: scipy's sosfilt wants a writable array, and the cached design must stay as designed
        sos = _butter_bandpass(self.filter_order, low, min(high, 0.45 * fs), float(fs)).copy()
        padlen = min(int(fs), signal.shape[-1] - 1)
        if padlen < 1:
            return signal
        return sosfiltfilt(sos, signal.astype(np.float64), axis=-1, padtype="even", padlen=padlen).astype(np.float32)

    # -- windows ------------------------------------------------------------------------------------------------------
    def window_starts(self, num_samples: int, stride: int | None = None) -> np.ndarray:
        """Start offsets of the inference windows over a prepared signal of ``num_samples`` samples."""
        stride = int(stride or self.stride)
        length = self.num_samples
        if num_samples <= length:
            return np.zeros(1, dtype=np.int64)
        starts = list(range(0, num_samples - length + 1, stride))
        if starts[-1] != num_samples - length:
            starts.append(num_samples - length)
        return np.asarray(starts, dtype=np.int64)

    def _window(self, signal: np.ndarray, start: int) -> np.ndarray:
        chunk = signal[:, start : start + self.num_samples]
        if self.normalize:
            mean = chunk.mean(axis=-1, keepdims=True, dtype=np.float64)
            std = chunk.std(axis=-1, keepdims=True, dtype=np.float64)
            flat = std <= 1e-6
            chunk = np.where(flat, 0.0, (chunk - mean) / np.where(flat, 1.0, std))
        out = np.full((signal.shape[0], self.num_samples), self.padding_value, dtype=np.float32)
        out[:, : chunk.shape[-1]] = chunk
        return out

    def padding_note(self, prepared: PreparedECG) -> str | None:
        missing = self.num_samples - prepared.num_samples
        if missing <= 0:
            return None
        return (
            f"record is {prepared.num_samples / self.sampling_rate:.1f} s, shorter than the model's "
            f"{self.window_seconds:g} s window: padded with {missing / self.sampling_rate:.1f} s of zeros"
        )

    def iter_windows(
        self, prepared: PreparedECG, batch_size: int = 64, stride: int | None = None
    ) -> Iterator[np.ndarray]:
        """Batches ``(<= batch_size, leads, num_samples)`` of all inference windows of one prepared record: memory
        stays bounded by the batch, whatever the record's length."""
        starts = self.window_starts(prepared.num_samples, stride)
        for i in range(0, len(starts), batch_size):
            yield np.stack([self._window(prepared.signal, int(s)) for s in starts[i : i + batch_size]])

    def crop_window(
        self, prepared: PreparedECG, crop: str | None = None, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """One window ``(leads, num_samples)``: centre, start or a random offset (training)."""
        crop = crop or self.crop
        if crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}.")
        slack = max(prepared.num_samples - self.num_samples, 0)
        if crop == "start" or slack == 0:
            start = 0
        elif crop == "center":
            start = slack // 2
        else:
            start = int((rng or np.random.default_rng()).integers(0, slack + 1))
        return self._window(prepared.signal, start)

_OWN_KEYS = {
    "lead_names",
    "sampling_rate",
    "num_samples",
    "window_stride",
    "bandpass",
    "filter_order",
    "normalize",
    "input_leads",
    "derive_limb_leads",
    "min_duration",
    "max_duration",
    "min_sampling_rate",
    "max_sampling_rate",
    "crop",
    "padding_value",
    "feature_size",
}
#: keys transformers writes into or passes through preprocessor_config.json
_TRANSFORMERS_KEYS = {"feature_extractor_type", "processor_class", "padding_side", "return_attention_mask", "auto_map"}
