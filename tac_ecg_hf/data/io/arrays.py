"""Bare ``.mat`` (scipy.io), ``.npy`` (numpy) and ``.csv`` (pandas) ECG files, with an optional JSON sidecar."""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...tasks import STANDARD_LEADS
from ..errors import ECGFileError, ECGFileNotFoundError, ECGInputError
from ..preprocessing import canonical_lead_name
from ..record import ECGRecord
from ._common import check_gain, too_many, units_to_mv

__all__ = ["load_sidecar", "orient", "array_record", "load_npy", "read_csv", "read_bare_mat"]

_MAX_SIDECAR_BYTES = 1 << 20


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_SIDECAR_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "sampling_rate": ("a number of Hz", _is_number),
    "lead_names": ("a list of lead names (strings)", _is_str_list),
    "units": ("a string such as 'mV' or 'uV'", lambda v: isinstance(v, str)),
    "gain": ("a number (ADC units per physical unit)", _is_number),
    "baseline": ("a number (ADC units)", _is_number),
    "layout": ("'leads_first' or 'time_first'", lambda v: isinstance(v, str)),
    "labels": ("a list of label names (strings)", _is_str_list),
    "record_id": ("a string", lambda v: isinstance(v, str)),
}


def load_sidecar(path: Path) -> dict[str, Any]:
    """The validated settings of ``<stem>.json`` beside ``path`` (``{}`` without one); None values are dropped."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        if sidecar.stat().st_size > _MAX_SIDECAR_BYTES:
            raise ECGFileError(f"Sidecar {sidecar} is larger than 1 MiB.")
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except ECGFileError:
        raise
    except (OSError, ValueError) as exc:
        raise ECGFileError(f"Sidecar {sidecar} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ECGFileError(f"Sidecar {sidecar} must hold a JSON object such as {{\"sampling_rate\": 500}}.")
    unknown = sorted(set(data) - set(_SIDECAR_TYPES))
    if unknown:
        raise ECGFileError(f"Sidecar {sidecar} has unknown keys {unknown}; allowed keys: {sorted(_SIDECAR_TYPES)}.")
    for key, value in data.items():
        kind, ok = _SIDECAR_TYPES[key]
        if value is not None and not ok(value):
            raise ECGFileError(f"Sidecar {sidecar}: {key!r} must be {kind}, got {value!r:.80}.")
    return {k: v for k, v in data.items() if v is not None}


def _require_sampling_rate(path: Path, value: Any) -> float:
    if value is None:
        raise ECGInputError(
            f"{path}: the file does not store its sampling rate; pass sampling_rate=<Hz> to read_record "
            f"or write a sidecar {path.with_suffix('.json').name} with {{\"sampling_rate\": 500}}."
        )
    try:
        fs = float(value)
    except (TypeError, ValueError):
        fs = float("nan")
    if not math.isfinite(fs) or fs <= 0:
        raise ECGInputError(f"{path}: sampling_rate must be a positive number of Hz, got {value!r}.")
    return fs


def orient(array: np.ndarray, path: Path, lead_names: Sequence[str] | None, layout: str | None):
    """``(leads, samples)`` and lead names for a 1-D/2-D array of unknown orientation."""
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise ECGFileError(f"{path}: expected a non-empty 1-D or 2-D signal array, got shape {array.shape}.")
    if layout not in (None, "leads_first", "time_first"):
        raise ECGInputError(f"{path}: layout must be 'leads_first' or 'time_first', got {layout!r}.")
    if layout is None:
        if lead_names is not None:
            n = len(lead_names)
            if n not in array.shape:
                raise ECGInputError(
                    f"{path}: array of shape {array.shape} does not have {n} leads ({list(lead_names)}) on "
                    "either axis; pass the right lead_names."
                )
            layout = "leads_first" if array.shape[0] == n else "time_first"
        else:
            small = min(array.shape)
            if small == max(array.shape) or small > 16:
                raise ECGInputError(
                    f"{path}: cannot tell leads from samples in an array of shape {array.shape}; "
                    "pass lead_names=[...] (and layout='leads_first' or 'time_first')."
                )
            layout = "leads_first" if array.shape[0] == small else "time_first"
    if layout == "time_first":
        array = array.T
    if lead_names is None:
        if array.shape[0] != len(STANDARD_LEADS):
            raise ECGInputError(
                f"{path}: {array.shape[0]} leads but no lead names; pass lead_names=[...] with "
                f"{array.shape[0]} names (only 12-lead arrays default to {list(STANDARD_LEADS)})."
            )
        lead_names = STANDARD_LEADS
    return array, tuple(lead_names)


def _apply_gain_and_units(array: np.ndarray, path: Path, gain, baseline: float, units: str | None):
    values = array.astype(np.float64)
    if gain is not None:
        gain = float(gain)
        check_gain(gain, path)
        values = (values - float(baseline)) / gain
        units = units or "mV"
    elif units is None:
        if array.dtype.kind in "iu":
            raise ECGInputError(
                f"{path}: integer samples without a gain; pass gain=<ADC units per mV> (e.g. 1000) "
                "or units='adc' to keep raw ADC values."
            )
        units = "mV"
    factor = units_to_mv(units)
    if factor is not None:
        values, units = values * factor, "mV"
    return values.astype(np.float32), units


def array_record(path: Path, array: np.ndarray, names, fs, record_id, gain, baseline, units, **meta) -> ECGRecord:
    """The record of a ``(leads, samples)`` array read from ``path`` (a .npy, .csv or bare .mat file)."""
    signal, units = _apply_gain_and_units(array, path, gain, baseline, units)
    meta = {"source_path": os.fspath(path), "raw_lead_names": tuple(names), **meta}
    lead_names = tuple(canonical_lead_name(n) for n in names)
    fs = _require_sampling_rate(path, fs)
    return ECGRecord(signal, fs, lead_names, record_id or path.stem, meta=meta, units=units)


def load_npy(path: Path, max_values: int) -> np.ndarray:
    """A numeric ``.npy`` array, its shape checked against ``max_values`` from the header before it is read."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
    except FileNotFoundError:
        raise ECGFileNotFoundError(f"{path} does not exist.") from None
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError ... on bad files
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise ECGFileError(
                f"{path} holds pickled Python objects or is no .npy file; only numeric arrays are read (no pickle)."
            ) from None
        raise ECGFileError(f"{path} is not a valid .npy file: it is truncated or corrupt ({exc}).") from exc
    if not isinstance(array, np.ndarray):  # an .npz archive renamed to .npy
        array.close()
        raise ECGFileError(f"{path} is an .npz archive, not a single .npy array.")
    if array.dtype.kind not in "iuf":
        raise ECGFileError(f"{path}: array dtype {array.dtype} is not numeric.")
    if array.size > max_values:
        raise too_many(path, f"the array has shape {array.shape} ({array.size:,} values)", max_values)
    try:
        return np.array(array)  # copy out of the memory map
    except OSError as exc:
        raise ECGFileError(f"Cannot read {path}: {exc}.") from exc


_TIME_COLUMNS = {"time", "t", "time_s", "time_ms", "times", "timestamp", "seconds", "sample", "samples", "index"}


def _read_csv_table(path: Path, max_values: int) -> tuple[np.ndarray, list[str] | None]:
    """``(samples x columns float64, header names or None)``; blank and ``nan``/``NA`` cells are NaN."""
    import pandas as pd

    try:
        size = path.stat().st_size
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = next((line for line in iter(lambda: fh.readline(1 << 20), "") if line.strip()), "")
    except FileNotFoundError:
        raise ECGFileNotFoundError(f"{path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ECGFileError(f"{path} is not a readable UTF-8 CSV file ({exc}).") from exc
    if size > 2 * max_values:  # each value takes at least a digit and a separator
        raise too_many(path, f"a CSV file of {size:,} bytes may hold {size // 2:,} values", max_values)
    if "\x00" in first:
        raise ECGFileError(f"{path} contains binary data (NUL bytes); it is not a CSV file.")
    cells = [c.strip() for c in first.strip().split(",")]
    has_header = not all(_is_float(c) for c in cells if c)
    try:
        with warnings.catch_warnings():  # rows longer than the header: an error, not a silent loss of data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(
                path, header=0 if has_header else None, index_col=False, encoding="utf-8-sig", skipinitialspace=True
            )
    except pd.errors.EmptyDataError:
        raise ECGFileError(f"{path} is empty.") from None
    except Exception as exc:  # ParserError/ParserWarning (too many fields in a row), UnicodeDecodeError, ...
        raise ECGFileError(f"{path} is not a valid CSV file ({type(exc).__name__}: {exc}).") from exc
    if table.empty:
        raise ECGFileError(f"{path} has a header row but no samples.")
    for column in table.columns:
        values = table[column]
        if values.dtype.kind not in "iuf":
            parsed = pd.to_numeric(values, errors="coerce")
            bad = values[values.notna() & parsed.isna()]
            if bad.empty:  # e.g. a bool column
                bad = values
            row, cell = bad.index[0], str(bad.iloc[0])
            raise ECGFileError(f"{path}, data row {row + 1}, column {column!r}: {cell[:40]!r} is not a number.")
    data = table.to_numpy(dtype=np.float64)
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        ends_with_newline = fh.read(1) in (b"\n", b"\r")
    if not ends_with_newline and np.isnan(data[-1]).any():
        raise ECGFileError(f"{path} ends in the middle of a row (data row {len(data)}); the file is truncated.")
    return data, [str(c).strip() for c in table.columns] if has_header else None


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _is_signal_column(name: str) -> bool:
    key = re.sub(r"\s*[(\[].*$", "", name.lower())  # 'Time (s)' -> 'time'
    return key not in _TIME_COLUMNS and not key.startswith("unnamed")


def read_csv(path: Path, lead_names, sampling_rate, units, gain, baseline, record_id, max_values) -> ECGRecord:
    """A CSV with one column per lead (a header row of lead names; time/index columns are left out)."""
    data, header = _read_csv_table(path, max_values)
    names_from_file = None
    if header is not None:
        keep = [i for i, name in enumerate(header) if _is_signal_column(name)]
        names_from_file, data = [header[i] for i in keep], data[:, keep]
    if data.shape[1] == 0:
        raise ECGFileError(f"{path} has no signal columns (only time/index columns).")
    names = lead_names if lead_names is not None else names_from_file
    if names is None:
        if data.shape[1] != len(STANDARD_LEADS):
            raise ECGInputError(
                f"{path}: CSV without a header row has {data.shape[1]} columns; pass lead_names=[...] "
                "(only 12-column files default to the standard lead order)."
            )
        names = STANDARD_LEADS
    if len(names) != data.shape[1]:
        raise ECGInputError(
            f"{path}: {data.shape[1]} signal columns {names_from_file or ''} but {len(names)} lead names "
            f"{list(names)}."
        )
    return array_record(path, data.T, names, sampling_rate, record_id, gain, baseline, units)


def _load_mat(path: Path, max_values: int) -> dict[str, Any]:
    from scipy.io import loadmat, whosmat

    try:
        size = path.stat().st_size
        if size > 8 * max_values:  # 8 bytes per float64 value
            raise too_many(path, f"a MATLAB file of {size:,} bytes may hold {size // 8:,} values", max_values)
        variables = whosmat(path)  # names and shapes, without reading the data
        for name, shape, _ in variables:
            if math.prod(shape) > max_values:
                raise too_many(path, f"variable {name!r} has shape {shape} ({math.prod(shape):,} values)", max_values)
        wanted = [name for name, _, _ in variables if name in ("val", "ECG")]
        content = loadmat(path, variable_names=wanted) if wanted else {}
    except ECGInputError:
        raise
    except FileNotFoundError:
        raise ECGFileNotFoundError(f"{path} does not exist.") from None
    except NotImplementedError as exc:
        raise ECGFileError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which is not supported; re-save it with save(..., '-v7')."
        ) from exc
    except Exception as exc:  # scipy raises many exception types on corrupt input
        raise ECGFileError(f"{path} is not a readable MATLAB file ({type(exc).__name__}: {exc}).") from exc
    if not wanted:
        raise ECGFileError(
            f"{path}: expected a variable 'val' (WFDB/CinC layout) or a struct 'ECG' (original CPSC2018 layout), "
            f"found {sorted(name for name, _, _ in variables)}."
        )
    return content


def read_bare_mat(path: Path, lead_names, sampling_rate, units, gain, baseline, layout, record_id, max_values):
    """A bare .mat: ``val`` (WFDB/CinC layout) or the original CPSC2018 struct ``ECG``."""
    content = _load_mat(path, max_values)
    if "val" in content:
        array = content["val"]
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
            raise ECGFileError(f"{path}: variable 'val' is not a numeric array.")
        array, names = orient(array, path, lead_names, layout or "leads_first")
        return array_record(path, array, names, sampling_rate, record_id, gain, baseline, units)
    # original CPSC2018 layout: struct ECG with fields sex, age and data (12 x T, mV, 500 Hz)
    struct = content["ECG"]
    try:
        data = np.asarray(struct["data"][0, 0], dtype=np.float64)
    except Exception as exc:
        raise ECGFileError(f"{path}: struct 'ECG' has no numeric field 'data' ({exc}).") from exc
    names = tuple(lead_names) if lead_names is not None else STANDARD_LEADS
    data, names = orient(data, path, names, layout or "leads_first")
    meta = {}
    for key in ("sex", "age"):
        try:
            value = np.asarray(struct[key][0, 0]).ravel()
            meta[key] = value[0].item() if value.size else None
        except Exception:  # field absent or of an unexpected type: the metadata is optional
            meta[key] = None
    fs = sampling_rate if sampling_rate is not None else 500.0
    return array_record(path, data, names, fs, record_id, gain, baseline, units or "mV", **meta)
