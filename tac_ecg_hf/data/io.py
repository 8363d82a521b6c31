"""Read one ECG file into an :class:`~tac_ecg_hf.data.record.ECGRecord` (float32 ``(leads, samples)``, in mV).

The libraries do the reading: WFDB records (every storage format, multi-segment records, ``.mat`` signal files
of the PhysioNet/CinC challenges) through :func:`wfdb.rdheader` / :func:`wfdb.rdrecord`, ``.npy`` through
``np.load(allow_pickle=False)``, CSV through :func:`pandas.read_csv` and bare MATLAB files through
:func:`scipy.io.loadmat`. Nothing is unpickled. This module adds what a data pipeline needs around them:

* sizes are bounded before anything is allocated: a header, an ``.npy`` header, a ``.mat`` variable table or a
  CSV file size that implies more than ``max_values`` (default :data:`MAX_SIGNAL_VALUES`) samples is refused
  with :class:`ECGInputError`;
* corrupt, truncated or inconsistent files raise :class:`ECGFileError` naming the file (the libraries' own
  exceptions are wrapped, their message kept), missing ones :class:`ECGFileNotFoundError`;
* physical units are converted to mV, lead names to their canonical spelling (``"AVL"`` -> ``"aVL"``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..tasks import STANDARD_LEADS
from .errors import ECGFileError, ECGFileNotFoundError, ECGInputError, ECGQualityWarning
from .preprocessing import canonical_lead_name
from .record import ECGRecord

__all__ = ["MAX_SIGNAL_VALUES", "read_record", "read_wfdb", "read_wfdb_header", "header_info"]

#: Most samples (leads x samples) a file may hold: 2**28 values are 1 GiB as float32, about 62 hours of 12-lead
#: ECG at 100 Hz. Files implying more are refused before allocation; pass ``max_values=`` to read larger ones.
MAX_SIGNAL_VALUES = 1 << 28
_MAX_HEADER_BYTES = 1 << 20
_MAX_SIDECAR_BYTES = 1 << 20
_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3, "v": 1e3, "nv": 1e-6}
# WFDB storage formats of fixed size (WFDB signal(5)): format -> (samples per group, bytes per group). Used to
# tell a truncated signal file before wfdb fails on it with a reshape error; compressed formats (FLAC 508, 516,
# 524) are left to wfdb.
_WFDB_FIXED_FORMATS = {
    "8": (1, 1), "80": (1, 1), "16": (1, 2), "61": (1, 2), "160": (1, 2), "24": (1, 3), "32": (1, 4),
    "212": (2, 3), "310": (3, 4), "311": (3, 4),
}
_WFDB_FORMATS = frozenset(_WFDB_FIXED_FORMATS) | {"508", "516", "524"}


def _units_to_mv(units: str | None) -> float | None:
    return _UNIT_TO_MV.get((units or "mV").strip().lower())


def _check_gain(gain: float, path: Path | str, what: str = "gain") -> None:
    if not math.isfinite(gain) or gain == 0:
        raise ECGInputError(f"{path}: {what} must be a finite non-zero number, got {gain!r}.")
    if gain < 0:
        warnings.warn(
            f"{path}: {what} {gain:g} is negative, so the signal's polarity is inverted; "
            "check the gain (--gain, the sidecar or the header) if that is not intended.",
            ECGQualityWarning,
            stacklevel=4,
        )


def _too_many(path: Path | str, what: str, max_values: int) -> ECGInputError:
    return ECGInputError(
        f"{path}: {what}, more than max_values={max_values:,} (MAX_SIGNAL_VALUES); "
        "the file is corrupt, or read a part of it (wfdb.rdrecord(..., sampfrom=, sampto=)) or pass a larger "
        "max_values= if the recording really is that long."
    )


# ================================================================================================================
# WFDB
# ================================================================================================================


def header_info(comments: Sequence[str]) -> dict[str, str]:
    """``#Key: value`` header comments as a dict (``{"Dx": "AF,RBBB", "Age": "61"}``); the first value of a key wins."""
    info: dict[str, str] = {}
    for comment in comments:
        key, sep, value = str(comment).partition(":")
        if sep and key.strip():
            info.setdefault(key.strip(), value.strip())
    return info


def _header_text(hea: Path) -> str:
    try:
        size = hea.stat().st_size
        if size > _MAX_HEADER_BYTES:
            raise ECGFileError(f"{hea} is larger than 1 MiB; it is not a WFDB header.")
        raw = hea.read_bytes()
    except FileNotFoundError:
        raise ECGFileNotFoundError(f"WFDB header {hea} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise ECGFileError(f"Cannot read WFDB header {hea}: {exc}.") from exc
    if b"\x00" in raw:
        raise ECGFileError(f"{hea} contains binary data (NUL bytes); it is not a WFDB header.")
    text = raw.decode("ascii", errors="ignore")  # as wfdb.rdheader reads it
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        raise ECGFileError(f"{hea}: no record line found; the header is empty or holds only comments.")
    return text


def _repair_record_line(text: str) -> str | None:
    """The header with its record line reduced to ``name n_sig fs n_samples`` (None if that changes nothing)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = line.split()
        repaired = [re.sub(r"\.(hea|dat|mat)$", "", tokens[0], flags=re.IGNORECASE)] + tokens[1:4]
        if repaired == tokens:
            return None
        lines[i] = " ".join(repaired)
        return "\n".join(lines) + "\n"
    return None


def _header_error(hea: Path, exc: Exception) -> ECGFileError:
    return ECGFileError(f"{hea} is not a valid WFDB header ({type(exc).__name__}: {exc}).")


def _signal_path(hea: Path, file_name: str) -> Path:
    if os.path.isabs(file_name) or ".." in Path(file_name).parts or "\x00" in file_name:
        raise ECGFileError(f"{hea}: signal file name {file_name!r} must be a relative path inside the record's folder.")
    return hea.parent / file_name


@contextlib.contextmanager
def _wfdb_source(hea: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(record name to pass to wfdb, header)``: the record itself, or a repaired copy of its header.

    wfdb-python cannot parse the record line of some real headers (issues MIT-LCP/wfdb-python#128 and #351,
    tracked in the still open #415): CinC 2017's ``A00001 1 300 9000 2014-05-08 05:05:15`` (an ISO date after
    the time: "unconverted data remains") and Georgia's (CinC 2020) ``E00001.mat 12 500 5000 05-May-2020
    14:50:55`` (a record name with an extension: "invalid syntax in record line"). wfdb has no public parser
    for header text, so when it fails the record line is repaired in memory (base time/date dropped, extension
    stripped) and wfdb reads that header from a temporary folder, beside links to the record's signal files.
    """
    import wfdb

    text = _header_text(hea)
    name = os.fspath(hea)[: -len(hea.suffix)]
    try:
        header = wfdb.rdheader(name)
    except Exception as exc:  # wfdb raises HeaderSyntaxError, ValueError, IndexError ... on bad headers
        repaired, first_error = _repair_record_line(text), exc
    else:
        yield name, header
        return
    if repaired is None:
        raise _header_error(hea, first_error) from first_error
    with tempfile.TemporaryDirectory(prefix="tac-ecg-wfdb-") as tmp:
        copy = Path(tmp) / f"{hea.stem}.hea"
        copy.write_text(repaired, encoding="ascii")
        try:
            header = wfdb.rdheader(os.fspath(copy)[:-4])
        except Exception as exc:
            raise _header_error(hea, exc) from exc
        if isinstance(header, wfdb.MultiRecord):
            raise _header_error(hea, first_error) from first_error
        for file_name in dict.fromkeys(header.file_name or ()):
            source = _signal_path(hea, file_name)
            if source.is_file():
                try:
                    os.symlink(source.resolve(), Path(tmp) / file_name)
                except OSError:  # no symlinks (e.g. Windows without developer mode): copy
                    shutil.copyfile(source, Path(tmp) / file_name)
        yield os.fspath(copy)[:-4], header


def _check_wfdb_header(header: Any, hea: Path, max_values: int) -> None:
    """Validate the parsed header and bound the record's size from it and the signal files' sizes."""
    import wfdb

    n_sig = header.n_sig or 0
    if n_sig < 1:
        raise ECGFileError(f"{hea}: the record declares {n_sig} signals; at least one is needed.")
    try:
        fs = float(header.fs)
    except (TypeError, ValueError):
        fs = float("nan")
    if not math.isfinite(fs) or fs <= 0:
        raise ECGFileError(f"{hea}: sampling frequency {header.fs!r} must be a finite positive number of Hz.")
    if isinstance(header, wfdb.MultiRecord):
        if not header.sig_len:
            raise ECGFileError(f"{hea}: the multi-segment record line gives no number of samples.")
        if header.sig_len * n_sig > max_values:
            raise _too_many(hea, f"the header declares {n_sig} signals x {header.sig_len:,} samples ({header.sig_len * n_sig:,} values)", max_values)
        return
    n_lines = len(header.file_name or ())
    if n_lines != n_sig:
        raise ECGFileError(
            f"{hea}: the record line declares {n_sig} signals but the header has {n_lines} signal lines; "
            "the header is truncated or corrupt."
        )
    unknown = sorted({str(f) for f in header.fmt} - _WFDB_FORMATS)
    if unknown:
        raise ECGFileError(f"{hea}: unknown WFDB storage format(s) {unknown}; known: {sorted(_WFDB_FORMATS, key=int)}.")
    spf = [int(s or 1) for s in header.samps_per_frame]
    sig_len = header.sig_len or 0
    if sig_len and sig_len * sum(spf) > max_values:
        raise _too_many(hea, f"the header declares {n_sig} signals x {sig_len:,} samples ({sig_len * sum(spf):,} values)", max_values)
    groups: dict[str, list[int]] = {}
    for i, file_name in enumerate(header.file_name):
        groups.setdefault(file_name, []).append(i)
    n_values = 0
    for file_name, channels in groups.items():
        path = _signal_path(hea, file_name)
        if not path.is_file():
            raise ECGFileNotFoundError(f"{hea} refers to signal file {file_name!r}, which does not exist at {path}.")
        fmt = header.fmt[channels[0]]
        if fmt not in _WFDB_FIXED_FORMATS:
            if not sig_len:
                raise ECGFileError(f"{hea}: format {fmt} of {file_name!r} needs the number of samples in the record line.")
            continue
        per_group, group_bytes = _WFDB_FIXED_FORMATS[fmt]
        offset = header.byte_offset[channels[0]] or 0
        size = path.stat().st_size
        if not sig_len:  # wfdb infers the length from the file size: bound that
            n_values += max(size - offset, 0) * per_group // group_bytes
            continue
        count = sig_len * sum(spf[i] for i in channels)
        needed = offset + math.ceil(count * group_bytes / per_group)
        padded = offset + math.ceil(count / per_group) * group_bytes  # writers may fill the last group
        if size < needed or (size > padded and not any(header.skew[i] for i in channels)):
            state = "truncated" if size < needed else "longer than the header declares"
            raise ECGFileError(
                f"{path} holds {size} bytes but {hea} declares {len(channels)} signals x {sig_len} samples in "
                f"format {fmt} from byte {offset} ({needed} bytes); the file is {state}, or the header is wrong."
            )
    if n_values > max_values:
        raise _too_many(hea, f"the signal files of its {n_sig} signals hold {n_values:,} samples", max_values)


def read_wfdb_header(path: str | os.PathLike) -> Any:
    """Read a WFDB header with :func:`wfdb.rdheader` (a ``wfdb.Record`` or ``wfdb.MultiRecord`` without signals).

    The record line of CinC 2017 and Georgia headers, which wfdb cannot parse, is repaired (see
    :func:`read_wfdb`). Raises :class:`ECGFileNotFoundError` or :class:`ECGFileError` naming the file.
    """
    hea = _header_path(Path(path))
    with _wfdb_source(hea) as (_, header):
        return header


def _header_path(path: Path) -> Path:
    """``x.hea`` for ``x.hea``, ``x.dat``, ``x.mat`` and ``x``."""
    suffix = path.suffix.lower()
    if suffix == ".hea":
        return path
    return path.with_suffix(".hea") if suffix in (".dat", ".mat") else path.with_name(path.name + ".hea")


def _physical(record: Any, names: list[str], hea: Path, verify_checksum: bool) -> np.ndarray:
    """Physical values (samples, signals) float64 of a single-segment record read with ``physical=False``."""
    if verify_checksum and record.checksum and all(s == 1 for s in record.samps_per_frame):
        for lead, declared, computed in zip(names, record.checksum, record.calc_checksum()):
            if declared and (computed - declared) % 0x10000:  # 16-bit, signed or unsigned
                raise ECGFileError(
                    f"{hea}: checksum of signal {lead!r} is {computed} but the header declares {declared}; "
                    "the signal file is corrupt (pass verify_checksum=False to read it anyway)."
                )
    # WFDB: a zero gain means the default of 200 ADC units per physical unit
    record.adc_gain = [float(g) if g else 200.0 for g in record.adc_gain]
    for lead, gain in zip(names, record.adc_gain):
        _check_gain(gain, hea, f"ADC gain of signal {lead!r}")
    return record.dac(return_res=64)


def read_wfdb(path: str | os.PathLike, *, verify_checksum: bool = True, max_values: int = MAX_SIGNAL_VALUES) -> ECGRecord:
    """Read a WFDB record (``x.hea``, ``x.dat``/``x.mat`` beside it, or ``x``) with :func:`wfdb.rdrecord`.

    Physical values ``(adc - baseline) / gain`` are converted to mV from the header's units (other units are
    kept, ``units="mixed"`` when they differ per lead, with ``meta["lead_units"]``). Invalid samples (the
    format's marker value) become NaN. Header checksums are verified (0, as in CinC 2017 headers, means "not
    recorded"). ``meta`` holds ``header_info`` (the ``#Key: value`` comments, e.g. ``Dx``, ``Age``, ``Sex``),
    ``comments``, ``raw_lead_names``, ``source_path`` and ``base_datetime`` (ISO text, when wfdb parsed one).
    """
    import wfdb

    hea = _header_path(Path(path))
    with _wfdb_source(hea) as (name, header):
        _check_wfdb_header(header, hea, max_values)
        multi = isinstance(header, wfdb.MultiRecord)
        try:
            record = wfdb.rdrecord(name, physical=multi, return_res=64)
        except FileNotFoundError as exc:
            raise ECGFileNotFoundError(f"{hea}: a file of the record is missing ({exc}).") from exc
        except Exception as exc:  # wfdb raises ValueError, IndexError, soundfile errors ... on corrupt data
            raise ECGFileError(
                f"{hea}: cannot read the record's signals ({type(exc).__name__}: {exc}); the signal files are "
                "corrupt or disagree with the header."
            ) from exc
    names = [str(n) if n else f"signal {i}" for i, n in enumerate(record.sig_name or [None] * record.n_sig)]
    units = [u or "mV" for u in (record.units or ["mV"] * record.n_sig)]
    try:
        physical = np.asarray(record.p_signal, dtype=np.float64) if multi else _physical(record, names, hea, verify_checksum)
    except ECGInputError:
        raise
    except Exception as exc:  # wfdb's conversion fails on values it accepted while reading
        raise ECGFileError(f"{hea}: cannot convert the record's samples ({type(exc).__name__}: {exc}).") from exc
    lead_units = []
    for i, unit in enumerate(units):
        factor = _units_to_mv(unit)
        if factor is not None:
            physical[:, i] *= factor
        lead_units.append("mV" if factor is not None else unit)
    comments = tuple(record.comments or ())
    base = getattr(record, "base_datetime", None)
    meta: dict[str, Any] = {
        "source_path": os.fspath(hea),
        "raw_lead_names": tuple(names),
        "comments": comments,
        "header_info": header_info(comments),
        "base_datetime": base.isoformat() if base is not None else None,
    }
    if len(set(lead_units)) > 1:
        meta["lead_units"] = tuple(lead_units)
    return ECGRecord(
        signal=physical.T.astype(np.float32),
        sampling_rate=float(record.fs),
        lead_names=tuple(canonical_lead_name(n) for n in names),
        record_id=record.record_name,
        meta=meta,
        units=lead_units[0] if len(set(lead_units)) == 1 else "mixed",
    )


# ================================================================================================================
# .npy, .csv, bare .mat (+ optional JSON sidecar)
# ================================================================================================================


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


def _load_sidecar(path: Path) -> dict[str, Any]:
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


def _orient(array: np.ndarray, path: Path, lead_names: Sequence[str] | None, layout: str | None):
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
        _check_gain(gain, path)
        values = (values - float(baseline)) / gain
        units = units or "mV"
    elif units is None:
        if array.dtype.kind in "iu":
            raise ECGInputError(
                f"{path}: integer samples without a gain; pass gain=<ADC units per mV> (e.g. 1000) "
                "or units='adc' to keep raw ADC values."
            )
        units = "mV"
    factor = _units_to_mv(units)
    if factor is not None:
        values, units = values * factor, "mV"
    return values.astype(np.float32), units


def _load_npy(path: Path, max_values: int) -> np.ndarray:
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
        raise _too_many(path, f"the array has shape {array.shape} ({array.size:,} values)", max_values)
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
        raise _too_many(path, f"a CSV file of {size:,} bytes may hold {size // 2:,} values", max_values)
    if "\x00" in first:
        raise ECGFileError(f"{path} contains binary data (NUL bytes); it is not a CSV file.")
    cells = [c.strip() for c in first.strip().split(",")]
    has_header = not all(_is_float(c) for c in cells if c)
    try:
        table = pd.read_csv(path, header=0 if has_header else None, encoding="utf-8-sig", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ECGFileError(f"{path} is empty.") from None
    except Exception as exc:  # ParserError (too many fields in a row), UnicodeDecodeError, ...
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


def _read_csv(path: Path, lead_names, sampling_rate, units, gain, baseline, record_id, max_values) -> ECGRecord:
    data, header = _read_csv_table(path, max_values)
    names_from_file = None
    if header is not None:
        keep = [
            i for i, name in enumerate(header)
            if (key := re.sub(r"\s*[(\[].*$", "", name.lower())) not in _TIME_COLUMNS and not key.startswith("unnamed")
        ]
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
            f"{path}: {data.shape[1]} signal columns {names_from_file or ''} but {len(names)} lead names {list(names)}."
        )
    signal, units = _apply_gain_and_units(data.T, path, gain, baseline, units)
    return ECGRecord(
        signal=signal,
        sampling_rate=_require_sampling_rate(path, sampling_rate),
        lead_names=tuple(canonical_lead_name(n) for n in names),
        record_id=record_id or path.stem,
        meta={"source_path": os.fspath(path), "raw_lead_names": tuple(names)},
        units=units,
    )


def _load_mat(path: Path, max_values: int) -> dict[str, Any]:
    from scipy.io import loadmat, whosmat

    try:
        if path.stat().st_size > 8 * max_values:  # 8 bytes per float64 value
            raise _too_many(path, f"a MATLAB file of {path.stat().st_size:,} bytes may hold {path.stat().st_size // 8:,} values", max_values)
        variables = whosmat(path)  # names and shapes, without reading the data
        for name, shape, _ in variables:
            if math.prod(shape) > max_values:
                raise _too_many(path, f"variable {name!r} has shape {shape} ({math.prod(shape):,} values)", max_values)
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


def _read_bare_mat(path: Path, lead_names, sampling_rate, units, gain, baseline, layout, record_id, max_values):
    content = _load_mat(path, max_values)
    meta: dict[str, Any] = {"source_path": os.fspath(path)}
    if "val" in content:
        array = content["val"]
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
            raise ECGFileError(f"{path}: variable 'val' is not a numeric array.")
        array, names = _orient(array, path, lead_names, layout or "leads_first")
        signal, units = _apply_gain_and_units(array, path, gain, baseline, units)
        fs = _require_sampling_rate(path, sampling_rate)
    else:  # original CPSC2018 layout: struct ECG with fields sex, age and data (12 x T, mV, 500 Hz)
        struct = content["ECG"]
        try:
            data = np.asarray(struct["data"][0, 0], dtype=np.float64)
        except Exception as exc:
            raise ECGFileError(f"{path}: struct 'ECG' has no numeric field 'data' ({exc}).") from exc
        data, names = _orient(data, path, tuple(lead_names) if lead_names is not None else STANDARD_LEADS, layout or "leads_first")
        signal, units = _apply_gain_and_units(data, path, gain, baseline, units or "mV")
        fs = _require_sampling_rate(path, sampling_rate if sampling_rate is not None else 500.0)
        for key in ("sex", "age"):
            try:
                value = np.asarray(struct[key][0, 0]).ravel()
                meta[key] = value[0].item() if value.size else None
            except Exception:  # field absent or of an unexpected type: the metadata is optional
                meta[key] = None
    meta["raw_lead_names"] = tuple(names)
    return ECGRecord(signal, fs, tuple(canonical_lead_name(n) for n in names), record_id or path.stem, meta=meta, units=units)


# ================================================================================================================
# Dispatch
# ================================================================================================================

_KNOWN_SUFFIXES = (".hea", ".mat", ".dat", ".npy", ".csv")


def read_record(
    path: str | os.PathLike,
    lead_names: Sequence[str] | None = None,
    sampling_rate: float | None = None,
    *,
    record_id: str | None = None,
    units: str | None = None,
    gain: float | None = None,
    baseline: float = 0.0,
    layout: str | None = None,
    verify_checksum: bool = True,
    max_values: int = MAX_SIGNAL_VALUES,
) -> ECGRecord:
    """Read one ECG record from ``path``, dispatching on its extension.

    * ``.hea`` (or a ``.mat``/``.dat`` with a sibling ``.hea``, or an extension-less record path): a WFDB record,
      read by :func:`read_wfdb`.
    * bare ``.mat``: key ``val`` (needs ``sampling_rate``; integer samples also need ``gain``) or the original
      CPSC2018 struct ``ECG.data`` (12 leads, mV, 500 Hz).
    * ``.npy``: ``(leads, T)`` or ``(T, leads)`` numeric array; the orientation comes from the number of lead
      names (or the smaller axis); ``sampling_rate`` is required.
    * ``.csv``: one column per lead with a header row of lead names (a ``time`` column is ignored; headerless
      12-column files get the standard lead order); ``sampling_rate`` is required.

    For ``.npy``/``.csv``/bare ``.mat`` a sidecar ``<stem>.json`` may give ``sampling_rate``, ``lead_names``,
    ``units``, ``gain``, ``baseline``, ``layout``, ``labels`` and ``record_id``; explicit arguments win.
    ``lead_names`` renames the leads of any format; ``units`` states the units of the stored values (``"uV"``,
    ``"mV"``, ``"V"`` are converted to mV); a negative ``gain`` is accepted with an :class:`ECGQualityWarning`.
    NaN samples are kept (the preprocessor refuses them, naming the leads). Files implying more than
    ``max_values`` samples are refused before they are read.

    Raises :class:`ECGFileNotFoundError`, :class:`ECGFileError` (corrupt/truncated/inconsistent file) or
    :class:`ECGInputError` (missing information such as the sampling rate, or a file over ``max_values``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _KNOWN_SUFFIXES:
        candidates = [path.parent / (path.name + ext) for ext in (".hea", ".mat", ".npy", ".csv")]
        found = [c for c in candidates if c.is_file()]
        if not found:
            if path.is_file():
                raise ECGFileError(f"{path}: unsupported file type {path.suffix!r}; supported: {', '.join(_KNOWN_SUFFIXES)}.")
            raise ECGFileNotFoundError(f"No ECG record at {path}: tried {', '.join(c.name for c in candidates)}.")
        path, suffix = found[0], found[0].suffix.lower()
    if suffix in (".mat", ".dat"):
        hea = path.with_suffix(".hea")
        if hea.is_file():
            path, suffix = hea, ".hea"
        elif suffix == ".dat":
            raise ECGFileError(f"{path}: a WFDB .dat file needs its header {hea.name} next to it.")
    if suffix != ".hea" and not path.is_file():
        raise ECGFileNotFoundError(f"{path} does not exist.")

    if suffix == ".hea":
        if units is not None or gain is not None:
            raise ECGInputError(f"{path}: units/gain come from the WFDB header; do not pass them.")
        record = read_wfdb(path, verify_checksum=verify_checksum, max_values=max_values)
        if sampling_rate is not None and not math.isclose(float(sampling_rate), record.sampling_rate):
            raise ECGInputError(
                f"{path}: the header says {record.sampling_rate:g} Hz but sampling_rate={sampling_rate!r} "
                "was passed; drop the argument (the header is authoritative) or fix the header."
            )
    else:
        sidecar = _load_sidecar(path)
        names = lead_names if lead_names is not None else sidecar.get("lead_names")
        fs = sampling_rate if sampling_rate is not None else sidecar.get("sampling_rate")
        units = units if units is not None else sidecar.get("units")
        gain = gain if gain is not None else sidecar.get("gain")
        baseline = baseline if baseline else sidecar.get("baseline", 0.0)
        layout = layout if layout is not None else sidecar.get("layout")
        rid = record_id or sidecar.get("record_id")
        if suffix == ".npy":
            array, names = _orient(_load_npy(path, max_values), path, names, layout)
            signal, units_out = _apply_gain_and_units(array, path, gain, baseline, units)
            meta = {"source_path": os.fspath(path), "raw_lead_names": tuple(names)}
            record = ECGRecord(
                signal, _require_sampling_rate(path, fs), tuple(canonical_lead_name(n) for n in names),
                rid or path.stem, meta=meta, units=units_out,
            )
        elif suffix == ".csv":
            record = _read_csv(path, names, fs, units, gain, baseline, rid, max_values)
        else:
            record = _read_bare_mat(path, names, fs, units, gain, baseline, layout, rid, max_values)
        if sidecar.get("labels"):
            record.labels = tuple(str(x) for x in sidecar["labels"])
        lead_names = None  # already applied
    if lead_names is not None:
        if isinstance(lead_names, str):
            lead_names = (lead_names,)
        if len(lead_names) != record.num_leads:
            raise ECGInputError(
                f"{path}: {record.num_leads} leads {list(record.lead_names)} but {len(lead_names)} lead names "
                f"were passed: {list(lead_names)}."
            )
        record.lead_names = tuple(canonical_lead_name(n) for n in lead_names)
    if record_id is not None:
        record.record_id = str(record_id)
    return record
