"""Helpers shared by the file readers: the size cap, unit conversion and gain checks."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from ..errors import ECGInputError, ECGQualityWarning

__all__ = ["MAX_SIGNAL_VALUES", "units_to_mv", "check_gain", "check_signal_gains", "too_many"]

#: Most samples (leads x samples) a file may hold: 2**28 values are 1 GiB as float32, about 62 hours of 12-lead
#: ECG at 100 Hz. Files implying more are refused before allocation; pass ``max_values=`` to read larger ones.
MAX_SIGNAL_VALUES = 1 << 28
_UNIT_TO_MV = {
    "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3, "v": 1e3, "nv": 1e-6,
}


def units_to_mv(units: str | None) -> float | None:
    """The factor from ``units`` to mV (``"uV"`` -> 0.001), or None for units that are not voltages."""
    return _UNIT_TO_MV.get((units or "mV").strip().lower())


def check_gain(gain: float, path: Path | str, what: str = "gain") -> None:
    """Refuse a zero or non-finite gain; warn (:class:`ECGQualityWarning`) about a negative one."""
    if not math.isfinite(gain) or gain == 0:
        raise ECGInputError(f"{path}: {what} must be a finite non-zero number, got {gain!r}.")
    if gain < 0:
        warnings.warn(
            f"{path}: {what} {gain:g} is negative, so the signal's polarity is inverted; check the gain "
            "(--gain, the sidecar or the header) if that is not intended.",
            ECGQualityWarning,
            stacklevel=4,
        )


def check_signal_gains(gains, names, path: Path | str) -> None:
    """:func:`check_gain` for the ADC gain of each signal of a record, with one warning naming every signal whose gain
    is negative (a header with twelve inverted leads gives one note, not twelve)."""
    negative = []
    for name, gain in zip(names, gains):
        if not math.isfinite(gain) or gain == 0:
            raise ECGInputError(f"{path}: ADC gain of signal {name!r} must be a finite non-zero number, got {gain!r}.")
        if gain < 0:
            negative.append(f"{name!r} {gain:g}")
    if negative:
        many = len(negative) > 1
        warnings.warn(
            f"{path}: ADC gain{'s' if many else ''} of signal{'s' if many else ''} {', '.join(negative)} "
            f"{'are' if many else 'is'} negative, so the polarity of {'those leads' if many else 'that lead'} is "
            "inverted; check the header's gains if that is not intended.",
            ECGQualityWarning,
            stacklevel=4,
        )


def too_many(path: Path | str, what: str, max_values: int) -> ECGInputError:
    """The error for a file implying more than ``max_values`` samples (``what`` says how many)."""
    return ECGInputError(
        f"{path}: {what}, more than max_values={max_values:,} (MAX_SIGNAL_VALUES); "
        "the file is corrupt, or read a part of it (wfdb.rdrecord(..., sampfrom=, sampto=)) or pass a larger "
        "max_values= if the recording really is that long."
    )
