"""Safe readers for ECG files and for the PTB-XL, CPSC2018, CinC2017 and Chapman-Shaoxing layouts.

Nothing here unpickles: ``.npy``/``.npz`` go through ``np.load(allow_pickle=False)``, MATLAB files
through :func:`scipy.io.loadmat`, WFDB headers through an own parser (which also copes with the
timestamps of CinC 2017 headers that the ``wfdb`` package rejects) and WFDB signal files through
numpy. Corrupt, truncated or inconsistent files raise :class:`ECGFileError` naming the file.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..tasks import STANDARD_LEADS, TASKS
from .errors import ECGFileError, ECGFileNotFoundError, ECGInputError, ECGQualityWarning
from .preprocessing import canonical_lead_name
from .record import ECGRecord

logger = logging.getLogger(__name__)

__all__ = [
    "WFDBSignalSpec",
    "WFDBHeader",
    "read_wfdb_header",
    "read_record",
    "assign_split",
    "SPLITS",
    "PTBXL_SPLIT_FOLDS",
    "load_ptbxl_metadata",
    "ptbxl_superclass_labels",
    "ptbxl_split",
    "read_ptbxl",
    "CPSC2018_LABEL_ALIASES",
    "CPSC2018_NUMERIC_LABELS",
    "parse_cpsc2018_labels",
    "read_cpsc2018",
    "read_cinc2017",
    "CHAPMAN_RHYTHM_GROUPS",
    "chapman_rhythm_group",
    "read_chapman",
]

SPLITS = ("train", "validation", "test")
_MAX_HEADER_BYTES = 1 << 20
_MAX_SIDECAR_BYTES = 1 << 20
_MAX_ABS_INT = 1 << 40
_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3, "v": 1e3, "nv": 1e-6}


def _display(path: Path | str) -> str:
    return os.fspath(path)


def _record_path(root: Path, record_id: str, suffix: str, dataset: str) -> Path:
    """``root/<record_id><suffix>``, refusing ids that are not plain file names (from index files)."""
    if not record_id or record_id in (".", "..") or any(c in record_id for c in "/\\\x00") or len(record_id) > 200:
        raise ECGFileError(f"{dataset}: record id {record_id[:80]!r} from the index file is not a plain file name.")
    return root / f"{record_id}{suffix}"


# ================================================================================================
# WFDB header
# ================================================================================================


@dataclass(frozen=True)
class WFDBSignalSpec:
    """One signal line of a WFDB header (see the WFDB ``header(5)`` specification)."""

    file_name: str
    fmt: str
    samples_per_frame: int = 1
    skew: int = 0
    byte_offset: int = 0
    gain: float = 200.0
    baseline: int = 0
    units: str = "mV"
    adc_resolution: int = 0
    adc_zero: int = 0
    init_value: int | None = None
    checksum: int | None = None
    block_size: int = 0
    description: str = ""


@dataclass(frozen=True)
class WFDBHeader:
    """A parsed WFDB ``.hea`` header (single-segment records)."""

    path: str
    record_name: str
    n_sig: int
    fs: float
    n_samples: int | None
    signals: tuple[WFDBSignalSpec, ...]
    counter_freq: float | None = None
    base_counter: float | None = None
    base_time: str | None = None
    base_datetime: datetime | None = None
    comments: tuple[str, ...] = ()
    info: dict[str, str] = field(default_factory=dict)

    @property
    def lead_names(self) -> tuple[str, ...]:
        return tuple(s.description or f"signal {i}" for i, s in enumerate(self.signals))


_FORMAT_RE = re.compile(r"^(\d{1,3})(?:x(\d{1,6}))?(?::(\d{1,9}))?(?:\+(\d{1,12}))?$")
_GAIN_RE = re.compile(r"^([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]{1,3})?)(?:\(([-+]?\d{1,15})\))?(?:/(\S{1,32}))?$")
_FS_RE = re.compile(
    r"^([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]{1,3})?)(?:/([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]{1,3})?)(?:\(([-+]?[0-9]*\.?[0-9]+)\))?)?$"
)
_DATETIME_FORMATS = (
    "%H:%M:%S %d/%m/%Y",
    "%H:%M:%S.%f %d/%m/%Y",
    "%d-%b-%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%H:%M:%S",
    "%H:%M:%S.%f",
)


def _parse_datetime(text: str) -> datetime | None:
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _parse_int(token: str, what: str, path: Path, line_no: int) -> int:
    try:
        value = int(token)
    except ValueError:
        raise ECGFileError(
            f"{_display(path)}, line {line_no}: {what} must be an integer, got {token!r}; the header is corrupt."
        ) from None
    if abs(value) > _MAX_ABS_INT:
        raise ECGFileError(f"{_display(path)}, line {line_no}: {what} {token} is out of range; the header is corrupt.")
    return value


def _parse_signal_line(line: str, path: Path, line_no: int) -> WFDBSignalSpec:
    tokens = line.split(maxsplit=8)
    if len(tokens) < 2:
        raise ECGFileError(
            f"{_display(path)}, line {line_no}: signal line {line!r} needs at least a file name and a format."
        )
    file_name = tokens[0]
    m = _FORMAT_RE.match(tokens[1])
    if not m:
        raise ECGFileError(
            f"{_display(path)}, line {line_no}: unparseable storage format {tokens[1]!r} "
            "(expected e.g. '16', '212' or '16+24')."
        )
    fmt, spf, skew, offset = m.group(1), m.group(2), m.group(3), m.group(4)
    kwargs: dict[str, Any] = {
        "file_name": file_name,
        "fmt": fmt,
        "samples_per_frame": int(spf) if spf else 1,
        "skew": int(skew) if skew else 0,
        "byte_offset": int(offset) if offset else 0,
    }
    baseline_given = None
    if len(tokens) > 2:
        g = _GAIN_RE.match(tokens[2])
        if not g:
            raise ECGFileError(
                f"{_display(path)}, line {line_no}: unparseable ADC gain {tokens[2]!r} "
                "(expected e.g. '1000/mV' or '1000(0)/mV')."
            )
        gain = float(g.group(1))
        if not math.isfinite(gain):
            raise ECGFileError(f"{_display(path)}, line {line_no}: ADC gain {tokens[2]!r} is not finite.")
        kwargs["gain"] = gain if gain != 0 else 200.0  # WFDB: a zero gain means the default 200
        if g.group(2) is not None:
            baseline_given = _parse_int(g.group(2), "ADC baseline", path, line_no)
        if g.group(3):
            kwargs["units"] = g.group(3)
    names = ("adc_resolution", "adc_zero", "init_value", "checksum", "block_size")
    for name, token in zip(names, tokens[3:8]):
        kwargs[name] = _parse_int(token, name.replace("_", " "), path, line_no)
    if len(tokens) > 8:
        kwargs["description"] = tokens[8].strip()
    kwargs["baseline"] = baseline_given if baseline_given is not None else kwargs.get("adc_zero", 0)
    return WFDBSignalSpec(**kwargs)


def read_wfdb_header(path: str | os.PathLike) -> WFDBHeader:
    """Parse a WFDB ``.hea`` header file.

    Record line: ``name n_sig [fs[/counter_freq[(base_counter)]] [n_samples [base_time [base_date]]]]``;
    the base date/time is kept as text in ``base_time`` and parsed into ``base_datetime`` when possible
    (``None`` otherwise: CinC 2017's ``2014-05-08 05:05:15`` and CinC 2020's ``05-Feb-2020 11:39:16``
    are understood, anything else is tolerated). Signal lines:
    ``file format[xspf][:skew][+offset] [gain[(baseline)][/units] [adc_res [adc_zero [init [checksum [block [description]]]]]]]``.
    Comment lines (``#Dx: RBBB,AF``) are kept in ``comments``; ``key: value`` comments also go into ``info``.

    Raises :class:`ECGFileNotFoundError` if the file is missing and :class:`ECGFileError` if it is not a
    valid single-segment header (binary content, bad numbers, signal-line count different from ``n_sig``).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_HEADER_BYTES + 1)
    except FileNotFoundError:
        raise ECGFileNotFoundError(f"WFDB header {_display(path)} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise ECGFileError(f"Cannot read WFDB header {_display(path)}: {exc}.") from exc
    if len(raw) > _MAX_HEADER_BYTES:
        raise ECGFileError(f"{_display(path)} is larger than 1 MiB; it is not a WFDB header.")
    if b"\x00" in raw:
        raise ECGFileError(f"{_display(path)} contains binary data (NUL bytes); it is not a WFDB header.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")

    comments: list[str] = []
    spec_lines: list[tuple[int, str]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            comments.append(stripped[1:].strip())
        else:
            spec_lines.append((line_no, stripped))
    if not spec_lines:
        raise ECGFileError(f"{_display(path)}: no record line found; the header is empty or holds only comments.")

    line_no, record_line = spec_lines[0]
    tokens = record_line.split()
    if len(tokens) < 2:
        raise ECGFileError(
            f"{_display(path)}, line {line_no}: record line {record_line!r} needs at least a record name and a signal count."
        )
    record_name = tokens[0]
    if "/" in record_name:
        raise ECGFileError(
            f"{_display(path)}: multi-segment record {record_name!r} is not supported; "
            "read it with wfdb.rdrecord and build an ECGRecord from the result."
        )
    n_sig = _parse_int(tokens[1], "number of signals", path, line_no)
    if n_sig <= 0:
        raise ECGFileError(f"{_display(path)}, line {line_no}: the record declares {n_sig} signals; at least one is needed.")
    fs, counter_freq, base_counter = 250.0, None, None  # WFDB default sampling frequency
    if len(tokens) > 2:
        m = _FS_RE.match(tokens[2])
        if not m:
            raise ECGFileError(
                f"{_display(path)}, line {line_no}: unparseable sampling frequency {tokens[2]!r} (expected e.g. '500')."
            )
        fs = float(m.group(1))
        counter_freq = float(m.group(2)) if m.group(2) else None
        base_counter = float(m.group(3)) if m.group(3) else None
        if not math.isfinite(fs) or fs <= 0:
            raise ECGFileError(f"{_display(path)}, line {line_no}: sampling frequency {tokens[2]!r} must be positive.")
    n_samples = None
    if len(tokens) > 3:
        n_samples = _parse_int(tokens[3], "number of samples", path, line_no)
        if n_samples < 0:
            raise ECGFileError(f"{_display(path)}, line {line_no}: negative number of samples {n_samples}.")
        n_samples = n_samples or None  # 0 means "unknown" in WFDB
    base_time = " ".join(tokens[4:]) or None

    signal_lines = spec_lines[1:]
    if len(signal_lines) != n_sig:
        raise ECGFileError(
            f"{_display(path)}: the record line declares {n_sig} signals but the header has {len(signal_lines)} "
            "signal lines; the header is truncated or corrupt."
        )
    signals = tuple(_parse_signal_line(line, path, no) for no, line in signal_lines)
    info: dict[str, str] = {}
    for comment in comments:
        key, sep, value = comment.partition(":")
        if sep and key.strip():
            info.setdefault(key.strip(), value.strip())
    return WFDBHeader(
        path=os.fspath(path),
        record_name=record_name,
        n_sig=n_sig,
        fs=fs,
        n_samples=n_samples,
        signals=signals,
        counter_freq=counter_freq,
        base_counter=base_counter,
        base_time=base_time,
        base_datetime=_parse_datetime(base_time) if base_time else None,
        comments=tuple(comments),
        info=info,
    )


# ================================================================================================
# WFDB signals
# ================================================================================================

# storage format -> (bytes per sample or None for packed formats, invalid-sample marker)
_WFDB_FORMATS: dict[str, tuple[float, int]] = {
    "16": (2, -(1 << 15)),
    "61": (2, -(1 << 15)),
    "80": (1, -(1 << 7)),
    "24": (3, -(1 << 23)),
    "32": (4, -(1 << 31)),
    "212": (1.5, -(1 << 11)),
}


def _decode_wfdb_bytes(buf: bytes, fmt: str, n_values: int) -> np.ndarray:
    """Decode the first ``n_values`` samples stored in ``buf`` in WFDB format ``fmt`` (int64)."""
    if fmt == "16":
        return np.frombuffer(buf, dtype="<i2", count=n_values).astype(np.int64)
    if fmt == "61":
        return np.frombuffer(buf, dtype=">i2", count=n_values).astype(np.int64)
    if fmt == "32":
        return np.frombuffer(buf, dtype="<i4", count=n_values).astype(np.int64)
    if fmt == "80":
        return np.frombuffer(buf, dtype=np.uint8, count=n_values).astype(np.int64) - 128
    if fmt == "24":
        b = np.frombuffer(buf, dtype=np.uint8, count=3 * n_values).reshape(-1, 3).astype(np.int64)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(v >= 1 << 23, v - (1 << 24), v)
    if fmt == "212":
        n_triplets = (n_values + 1) // 2
        b = np.frombuffer(buf[: 3 * n_triplets].ljust(3 * n_triplets, b"\x00"), dtype=np.uint8)
        b = b.reshape(-1, 3).astype(np.int64)
        out = np.empty(2 * n_triplets, dtype=np.int64)
        out[0::2] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
        out[1::2] = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
        out = np.where(out >= 1 << 11, out - (1 << 12), out)
        return out[:n_values]
    raise AssertionError(fmt)  # guarded by the caller


def _checksum16(values: np.ndarray) -> int:
    total = int(values.sum()) & 0xFFFF
    return total - 0x10000 if total >= 0x8000 else total


def _resolve_signal_file(header: WFDBHeader, file_name: str) -> Path:
    if os.path.isabs(file_name) or ".." in Path(file_name).parts or "\x00" in file_name:
        raise ECGFileError(
            f"{header.path}: signal file name {file_name!r} must be a relative path inside the record's directory."
        )
    return Path(header.path).parent / file_name


def _read_signal_group(
    header: WFDBHeader, file_name: str, specs: list[WFDBSignalSpec], verify_checksum: bool
) -> np.ndarray:
    """Read the raw ADC samples (n_signals_in_file, n_samples) int64 of one signal file."""
    file_path = _resolve_signal_file(header, file_name)
    n_sig = len(specs)
    try:
        exists = file_path.is_file()
    except (OSError, ValueError):  # e.g. a file name longer than the OS allows
        exists = False
    if not exists:
        raise ECGFileNotFoundError(
            f"{header.path} refers to signal file {file_name!r}, which does not exist at {_display(file_path)}."
        )
    if file_path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        try:
            content = loadmat(file_path, variable_names=["val"])
        except Exception as exc:  # scipy raises many exception types on corrupt input
            raise ECGFileError(f"{_display(file_path)} is not a readable MATLAB file ({type(exc).__name__}: {exc}).") from exc
        val = content.get("val")
        if not isinstance(val, np.ndarray) or val.ndim != 2 or val.dtype.kind not in "iuf":
            raise ECGFileError(
                f"{_display(file_path)} has no 2-D numeric variable 'val' (the WFDB/CinC layout stores "
                f"ADC samples as val[signals, samples]); found keys {sorted(k for k in content if not k.startswith('__'))}."
            )
        if val.shape[0] != n_sig:
            raise ECGFileError(
                f"{_display(file_path)} holds 'val' of shape {val.shape} but {header.path} declares {n_sig} signals in it; "
                "the header and the signal file disagree."
            )
        if header.n_samples is not None and val.shape[1] != header.n_samples:
            raise ECGFileError(
                f"{_display(file_path)} holds {val.shape[1]} samples per signal but {header.path} declares "
                f"{header.n_samples}; the file is truncated or the header is wrong."
            )
        if val.dtype.kind == "f":
            if not np.all(np.isfinite(val)) or np.any(val != np.round(val)):
                raise ECGFileError(f"{_display(file_path)}: 'val' must hold integer ADC samples.")
        adc = val.astype(np.int64)
        invalid = _WFDB_FORMATS.get(specs[0].fmt, (None, None))[1]
    else:
        fmt = specs[0].fmt
        if any(s.fmt != fmt or s.byte_offset != specs[0].byte_offset for s in specs):
            raise ECGFileError(f"{header.path}: signals in {file_name!r} must share one format and byte offset.")
        if fmt not in _WFDB_FORMATS:
            raise ECGFileError(
                f"{header.path}: WFDB storage format {fmt!r} of {file_name!r} is not supported (supported: "
                f"{sorted(_WFDB_FORMATS)}); read it with wfdb.rdrecord and build an ECGRecord from p_signal."
            )
        if any(s.samples_per_frame != 1 or s.skew != 0 for s in specs):
            raise ECGFileError(
                f"{header.path}: multi-frequency or skewed signals in {file_name!r} are not supported; "
                "read the record with wfdb.rdrecord(..., smooth_frames=True)."
            )
        try:
            with open(file_path, "rb") as fh:
                fh.seek(specs[0].byte_offset)
                buf = fh.read()
        except (OSError, ValueError, OverflowError) as exc:
            raise ECGFileError(f"Cannot read signal file {_display(file_path)}: {exc}.") from exc
        bytes_per_sample, invalid = _WFDB_FORMATS[fmt]
        if header.n_samples is not None:
            n_values = header.n_samples * n_sig
            needed = math.ceil(n_values * bytes_per_sample)
            # format 212 writers may pad an odd number of samples to a full 3-byte group
            allowed = {needed, needed + 1} if fmt == "212" and n_values % 2 else {needed}
            if len(buf) not in allowed:
                state = "truncated" if len(buf) < needed else "longer than declared"
                raise ECGFileError(
                    f"{_display(file_path)} holds {len(buf)} bytes of format-{fmt} data but {header.path} declares "
                    f"{n_sig} signals x {header.n_samples} samples ({needed} bytes); the file is {state} "
                    "or the header is wrong."
                )
        else:
            n_values = int(len(buf) // bytes_per_sample)
            n_values -= n_values % n_sig
            if n_values == 0 or (fmt != "212" and len(buf) != n_values * bytes_per_sample):
                raise ECGFileError(
                    f"{_display(file_path)}: {len(buf)} bytes do not hold a whole number of {n_sig}-signal "
                    f"frames in format {fmt}; the file is truncated."
                )
        adc = _decode_wfdb_bytes(buf, fmt, n_values).reshape(-1, n_sig).T
    if adc.shape[1] == 0:
        raise ECGFileError(f"{_display(file_path)} holds no samples.")
    if verify_checksum and header.n_samples is not None:
        for row, spec in zip(adc, specs):
            # CinC 2017 headers carry 0 as a checksum placeholder: 0 means "not recorded" here.
            if spec.checksum and (_checksum16(row) - spec.checksum) % 0x10000:  # signed or unsigned 16-bit
                raise ECGFileError(
                    f"{_display(file_path)}: checksum of signal {spec.description or '?'!r} is {_checksum16(row)} but "
                    f"{header.path} declares {spec.checksum}; the file is corrupt (pass verify_checksum=False to "
                    "read it anyway)."
                )
    if invalid is not None and np.any(adc == invalid):
        adc = adc.astype(np.float64)
        adc[adc == invalid] = np.nan
    return adc


def _units_to_mv(units: str) -> float | None:
    return _UNIT_TO_MV.get(units.strip().lower())


def _read_wfdb_record(hea_path: Path, verify_checksum: bool = True) -> ECGRecord:
    header = read_wfdb_header(hea_path)
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(header.signals):
        groups.setdefault(spec.file_name, []).append(i)
    rows: list[np.ndarray | None] = [None] * header.n_sig
    length = None
    for file_name, indices in groups.items():
        adc = _read_signal_group(header, file_name, [header.signals[i] for i in indices], verify_checksum)
        if length is not None and adc.shape[1] != length:
            raise ECGFileError(f"{header.path}: signal files hold different numbers of samples ({length} vs {adc.shape[1]}).")
        length = adc.shape[1]
        for row, i in zip(adc, indices):
            rows[i] = row
    signal = np.empty((header.n_sig, length), dtype=np.float64)
    units_out = []
    for i, (row, spec) in enumerate(zip(rows, header.signals)):
        physical = (np.asarray(row, dtype=np.float64) - spec.baseline) / spec.gain
        factor = _units_to_mv(spec.units)
        if factor is not None:
            physical *= factor
            units_out.append("mV")
        else:
            units_out.append(spec.units)
        signal[i] = physical
    units = units_out[0] if len(set(units_out)) == 1 else "mixed"
    raw_names = header.lead_names
    meta = {
        "source_path": header.path,
        "raw_lead_names": raw_names,
        "comments": header.comments,
        "header_info": dict(header.info),
        "base_time": header.base_time,
        "base_datetime": header.base_datetime.isoformat() if header.base_datetime else None,
    }
    if units == "mixed":
        meta["lead_units"] = tuple(units_out)
    return ECGRecord(
        signal=signal.astype(np.float32),
        sampling_rate=header.fs,
        lead_names=tuple(canonical_lead_name(n) for n in raw_names),
        record_id=header.record_name,
        meta=meta,
        units=units,
    )


# ================================================================================================
# Other single-record formats: bare .mat, .npy, .csv (+ optional JSON sidecar)
# ================================================================================================


def _load_sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        if sidecar.stat().st_size > _MAX_SIDECAR_BYTES:
            raise ECGFileError(f"Sidecar {_display(sidecar)} is larger than 1 MiB.")
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except ECGFileError:
        raise
    except (OSError, ValueError) as exc:
        raise ECGFileError(f"Sidecar {_display(sidecar)} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ECGFileError(f"Sidecar {_display(sidecar)} must hold a JSON object such as {{\"sampling_rate\": 500}}.")
    allowed = {"sampling_rate", "lead_names", "units", "gain", "baseline", "layout", "labels", "record_id"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ECGFileError(f"Sidecar {_display(sidecar)} has unknown keys {unknown}; allowed keys: {sorted(allowed)}.")
    for key, value in data.items():
        if value is None:
            continue
        kind, ok = _SIDECAR_TYPES[key]
        if not ok(value):
            raise ECGFileError(f"Sidecar {_display(sidecar)}: {key!r} must be {kind}, got {value!r:.80}.")
    return {k: v for k, v in data.items() if v is not None}


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


def _require_sampling_rate(path: Path, value: Any) -> float:
    if value is None:
        raise ECGInputError(
            f"{_display(path)}: the file does not store its sampling rate; pass sampling_rate=<Hz> to read_record "
            f"or write a sidecar {path.with_suffix('.json').name} with {{\"sampling_rate\": 500}}."
        )
    try:
        fs = float(value)
    except (TypeError, ValueError):
        fs = float("nan")
    if not math.isfinite(fs) or fs <= 0:
        raise ECGInputError(f"{_display(path)}: sampling_rate must be a positive number of Hz, got {value!r}.")
    return fs


def _orient(array: np.ndarray, path: Path, lead_names: Sequence[str] | None, layout: str | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Return (leads, samples) and lead names for a 2-D array of unknown orientation."""
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise ECGFileError(f"{_display(path)}: expected a non-empty 1-D or 2-D signal array, got shape {array.shape}.")
    if layout not in (None, "leads_first", "time_first"):
        raise ECGInputError(f"{_display(path)}: layout must be 'leads_first' or 'time_first', got {layout!r}.")
    if layout is None:
        if lead_names is not None:
            n = len(lead_names)
            if array.shape[0] == n:
                layout = "leads_first"
            elif array.shape[1] == n:
                layout = "time_first"
            else:
                raise ECGInputError(
                    f"{_display(path)}: array of shape {array.shape} does not have {n} leads ({list(lead_names)}) on "
                    "either axis; pass the right lead_names."
                )
        else:
            small = min(array.shape)
            if small == max(array.shape) or small > 16:
                raise ECGInputError(
                    f"{_display(path)}: cannot tell leads from samples in an array of shape {array.shape}; "
                    "pass lead_names=[...] (and layout='leads_first' or 'time_first')."
                )
            layout = "leads_first" if array.shape[0] == small else "time_first"
    if layout == "time_first":
        array = array.T
    if lead_names is None:
        if array.shape[0] != len(STANDARD_LEADS):
            raise ECGInputError(
                f"{_display(path)}: {array.shape[0]} leads but no lead names; pass lead_names=[...] with "
                f"{array.shape[0]} names (only 12-lead arrays default to {list(STANDARD_LEADS)})."
            )
        lead_names = STANDARD_LEADS
    return array, tuple(lead_names)


def _apply_gain_and_units(
    array: np.ndarray, path: Path, gain: float | None, baseline: float, units: str | None
) -> tuple[np.ndarray, str]:
    values = array.astype(np.float64)
    if gain is not None:
        gain = float(gain)
        if not math.isfinite(gain) or gain == 0:
            raise ECGInputError(f"{_display(path)}: gain must be a finite non-zero number, got {gain!r}.")
        values = (values - float(baseline)) / gain
        units = units or "mV"
    elif units is None:
        if array.dtype.kind in "iu":
            raise ECGInputError(
                f"{_display(path)}: integer samples without a gain; pass gain=<ADC units per mV> (e.g. 1000) "
                "or units='adc' to keep raw ADC values."
            )
        units = "mV"
    factor = _units_to_mv(units)
    if factor is not None:
        values = values * factor
        units = "mV"
    return values.astype(np.float32), units


def _read_npy_array(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
        if dtype.hasobject:
            raise ECGFileError(f"{_display(path)} stores Python objects; only numeric arrays are read (no pickle).")
        expected = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
        actual = path.stat().st_size - offset
        if actual != expected:
            raise ECGFileError(
                f"{_display(path)} declares an array of shape {shape} ({dtype}) = {expected} bytes but holds {actual}; "
                "the file is truncated or corrupt."
            )
        return np.load(path, allow_pickle=False)
    except ECGInputError:
        raise
    except FileNotFoundError:
        raise ECGFileNotFoundError(f"{_display(path)} does not exist.") from None
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, SyntaxError ... on bad files
        raise ECGFileError(f"{_display(path)} is not a valid .npy file ({type(exc).__name__}: {exc}).") from exc


_TIME_COLUMNS = {"time", "t", "time_s", "time_ms", "times", "timestamp", "seconds", "sample", "samples", "index"}


def _read_csv_table(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Return (samples x columns float64, header names or None).

    Clean numeric files go through :func:`numpy.loadtxt`; anything else through a cell-by-cell parser
    whose errors name the offending row and column.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ECGFileNotFoundError(f"{_display(path)} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ECGFileError(f"{_display(path)} is not a readable UTF-8 CSV file ({exc}).") from exc
    if "\x00" in text:
        raise ECGFileError(f"{_display(path)} contains binary data (NUL bytes); it is not a CSV file.")
    first_line, _, rest = text.lstrip("\r\n").partition("\n")
    first = [c.strip() for c in first_line.strip().split(",")]
    try:
        [float(c) for c in first]
        header, body = None, text
    except ValueError:
        header, body = first, rest
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on empty input
            data = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
        if data.size and data.shape[1] == len(first):
            return data, header
    except ValueError:
        pass
    return _parse_csv_cells(text, path)


def _parse_csv_cells(text: str, path: Path) -> tuple[np.ndarray, list[str] | None]:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ECGFileError(f"{_display(path)} is not valid CSV ({exc}).") from exc
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ECGFileError(f"{_display(path)} is empty.")

    def is_number(cell: str) -> bool:
        try:
            float(cell)
            return True
        except ValueError:
            return False

    header: list[str] | None = None
    if not all(is_number(cell) for cell in rows[0] if cell.strip()):
        header = [cell.strip() for cell in rows[0]]
        rows = rows[1:]
    if not rows:
        raise ECGFileError(f"{_display(path)} has a header row but no samples.")
    width = len(header) if header is not None else len(rows[0])
    data = np.empty((len(rows), width), dtype=np.float64)
    for r, row in enumerate(rows):
        if len(row) != width:
            raise ECGFileError(
                f"{_display(path)}, data row {r + 1}: {len(row)} columns but {width} expected; "
                "the file is truncated or malformed."
            )
        for c, cell in enumerate(row):
            cell = cell.strip()
            if cell == "" or cell.lower() in ("nan", "na"):
                data[r, c] = np.nan
                continue
            try:
                data[r, c] = float(cell)
            except ValueError:
                column = header[c] if header else c
                raise ECGFileError(
                    f"{_display(path)}, data row {r + 1}, column {column!r}: {cell[:40]!r} is not a number."
                ) from None
    return data, header


def _read_csv_record(path: Path, lead_names, sampling_rate, units, gain, baseline, record_id) -> ECGRecord:
    data, header = _read_csv_table(path)
    if header is not None:
        def is_signal_column(name: str) -> bool:
            key = re.sub(r"\s*[(\[].*$", "", name.strip().lower())  # 'Time (s)' -> 'time'
            return key not in _TIME_COLUMNS and not key.startswith("unnamed")

        keep = [i for i, name in enumerate(header) if is_signal_column(name)]
        names_from_file = [header[i] for i in keep]
        data = data[:, keep]
    else:
        names_from_file = None
    if data.shape[1] == 0 or data.shape[0] == 0:
        raise ECGFileError(f"{_display(path)} has no signal columns (only time/index columns).")
    names = lead_names if lead_names is not None else names_from_file
    if names is None:
        if data.shape[1] != len(STANDARD_LEADS):
            raise ECGInputError(
                f"{_display(path)}: CSV without a header row has {data.shape[1]} columns; pass lead_names=[...] "
                "(only 12-column files default to the standard lead order)."
            )
        names = STANDARD_LEADS
    if len(names) != data.shape[1]:
        raise ECGInputError(
            f"{_display(path)}: {data.shape[1]} signal columns {names_from_file or ''} but {len(names)} lead names {list(names)}."
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


def _load_mat(path: Path) -> dict[str, Any]:
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except FileNotFoundError:
        raise ECGFileNotFoundError(f"{_display(path)} does not exist.") from None
    except NotImplementedError as exc:
        raise ECGFileError(
            f"{_display(path)} is a MATLAB v7.3 (HDF5) file, which is not supported; re-save it with save(..., '-v7')."
        ) from exc
    except Exception as exc:  # scipy raises many exception types on corrupt input
        raise ECGFileError(f"{_display(path)} is not a readable MATLAB file ({type(exc).__name__}: {exc}).") from exc


def _read_bare_mat(path: Path, lead_names, sampling_rate, units, gain, baseline, layout, record_id) -> ECGRecord:
    content = _load_mat(path)
    meta: dict[str, Any] = {"source_path": os.fspath(path)}
    if "val" in content:
        array = content["val"]
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
            raise ECGFileError(f"{_display(path)}: variable 'val' is not a numeric array.")
        array, names = _orient(array, path, lead_names, layout or "leads_first")
        signal, units = _apply_gain_and_units(array, path, gain, baseline, units)
        fs = _require_sampling_rate(path, sampling_rate)
    elif "ECG" in content:
        # Original CPSC2018 layout: struct ECG with fields sex, age and data (12 x T, mV, 500 Hz).
        struct = content["ECG"]
        try:
            data = np.asarray(struct["data"][0, 0], dtype=np.float64)
        except Exception as exc:
            raise ECGFileError(f"{_display(path)}: struct 'ECG' has no numeric field 'data' ({exc}).") from exc
        names = tuple(lead_names) if lead_names is not None else STANDARD_LEADS
        data, names = _orient(data, path, names, layout or "leads_first")
        signal, units = _apply_gain_and_units(data, path, gain, baseline, units or "mV")
        fs = _require_sampling_rate(path, sampling_rate if sampling_rate is not None else 500.0)
        for key in ("sex", "age"):
            try:
                value = struct[key][0, 0]
                value = np.asarray(value).ravel()
                meta[key] = value[0].item() if value.size else None
            except Exception:
                meta[key] = None
    else:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise ECGFileError(
            f"{_display(path)}: expected a variable 'val' (WFDB/CinC layout) or a struct 'ECG' (original CPSC2018 layout), "
            f"found {keys}."
        )
    meta["raw_lead_names"] = tuple(names)
    return ECGRecord(
        signal=signal,
        sampling_rate=fs,
        lead_names=tuple(canonical_lead_name(n) for n in names),
        record_id=record_id or path.stem,
        meta=meta,
        units=units,
    )


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
) -> ECGRecord:
    """Read one ECG record from ``path``, dispatching on its extension.

    * ``.hea`` (or a ``.mat``/``.dat`` with a sibling ``.hea``, or an extension-less record path):
      WFDB record. Signals come from the files the header names: ``.mat`` (key ``val``, ADC samples,
      PhysioNet/CinC layout) or binary ``.dat`` (formats 16, 61, 80, 24, 32, 212); physical values
      ``(adc - baseline) / gain``, converted to mV.
    * bare ``.mat``: key ``val`` (needs ``sampling_rate``; integer samples also need ``gain``) or the
      original CPSC2018 struct ``ECG.data`` (12 leads, mV, 500 Hz).
    * ``.npy``: ``(leads, T)`` or ``(T, leads)`` numeric array; the orientation comes from the number of
      lead names (or the smaller axis); ``sampling_rate`` is required.
    * ``.csv``: one column per lead with a header row of lead names (a ``time`` column is ignored);
      ``sampling_rate`` is required.

    For ``.npy``/``.csv``/bare ``.mat`` a sidecar ``<stem>.json`` may give ``sampling_rate``,
    ``lead_names``, ``units``, ``gain``, ``baseline``, ``layout``, ``labels`` and ``record_id``;
    explicit arguments win. ``lead_names`` renames the leads of any format; ``units`` states the
    units of the stored values (``"uV"``, ``"mV"``, ``"V"`` are converted to mV).

    Raises :class:`ECGFileNotFoundError`, :class:`ECGFileError` (corrupt/truncated/inconsistent file)
    or :class:`ECGInputError` (missing information, such as the sampling rate).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    known = (".hea", ".mat", ".dat", ".npy", ".csv")
    if suffix not in known:
        candidates = [path.parent / (path.name + ext) for ext in (".hea", ".mat", ".npy", ".csv")]
        found = [c for c in candidates if c.is_file()]
        if not found:
            if path.is_file():
                raise ECGFileError(
                    f"{_display(path)}: unsupported file type {path.suffix!r}; supported: {', '.join(known)}."
                )
            raise ECGFileNotFoundError(
                f"No ECG record at {_display(path)}: tried {', '.join(c.name for c in candidates)}."
            )
        path, suffix = found[0], found[0].suffix.lower()
    if suffix in (".mat", ".dat"):
        hea = path.with_suffix(".hea")
        if hea.is_file():
            path, suffix = hea, ".hea"
        elif suffix == ".dat":
            raise ECGFileError(f"{_display(path)}: a WFDB .dat file needs its header {hea.name} next to it.")
    if suffix != ".hea" and not path.is_file():
        raise ECGFileNotFoundError(f"{_display(path)} does not exist.")

    if suffix == ".hea":
        record = _read_wfdb_record(path, verify_checksum=verify_checksum)
        if sampling_rate is not None and not math.isclose(float(sampling_rate), record.sampling_rate):
            raise ECGInputError(
                f"{_display(path)}: the header says {record.sampling_rate:g} Hz but sampling_rate={sampling_rate!r} "
                "was passed; drop the argument (the header is authoritative) or fix the header."
            )
        if units is not None or gain is not None:
            raise ECGInputError(f"{_display(path)}: units/gain come from the WFDB header; do not pass them.")
    else:
        sidecar = _load_sidecar(path)
        lead_names_eff = lead_names if lead_names is not None else sidecar.get("lead_names")
        fs_eff = sampling_rate if sampling_rate is not None else sidecar.get("sampling_rate")
        units_eff = units if units is not None else sidecar.get("units")
        gain_eff = gain if gain is not None else sidecar.get("gain")
        baseline_eff = baseline if baseline else sidecar.get("baseline", 0.0)
        layout_eff = layout if layout is not None else sidecar.get("layout")
        rid = record_id or sidecar.get("record_id")
        if suffix == ".npy":
            array = _read_npy_array(path)
            if not isinstance(array, np.ndarray):  # an .npz archive renamed to .npy
                raise ECGFileError(f"{_display(path)} is an .npz archive, not a single .npy array.")
            if array.dtype.kind not in "iuf":
                raise ECGFileError(f"{_display(path)}: array dtype {array.dtype} is not numeric.")
            array, names = _orient(array, path, lead_names_eff, layout_eff)
            signal, units_out = _apply_gain_and_units(array, path, gain_eff, baseline_eff, units_eff)
            record = ECGRecord(
                signal=signal,
                sampling_rate=_require_sampling_rate(path, fs_eff),
                lead_names=tuple(canonical_lead_name(n) for n in names),
                record_id=rid or path.stem,
                meta={"source_path": os.fspath(path), "raw_lead_names": tuple(names)},
                units=units_out,
            )
        elif suffix == ".csv":
            record = _read_csv_record(path, lead_names_eff, fs_eff, units_eff, gain_eff, baseline_eff, rid)
        else:
            record = _read_bare_mat(path, lead_names_eff, fs_eff, units_eff, gain_eff, baseline_eff, layout_eff, rid)
        if sidecar.get("labels"):
            record.labels = tuple(str(x) for x in sidecar["labels"])
        lead_names = None  # already applied
    if lead_names is not None:
        if isinstance(lead_names, str):
            lead_names = (lead_names,)
        if len(lead_names) != record.num_leads:
            raise ECGInputError(
                f"{_display(path)}: {record.num_leads} leads {list(record.lead_names)} but {len(lead_names)} lead names "
                f"were passed: {list(lead_names)}."
            )
        record.meta.setdefault("raw_lead_names", record.lead_names)
        record.lead_names = tuple(canonical_lead_name(n) for n in lead_names)
    if record_id is not None:
        record.record_id = str(record_id)
    return record


# ================================================================================================
# Splits
# ================================================================================================


def assign_split(record_id: str, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0) -> str:
    """Deterministic train/validation/test assignment for datasets without official folds.

    The record id and seed are hashed with SHA-256 (``f"{seed}:{record_id}"``); the first 8 bytes give
    a number ``u`` uniform in [0, 1), and the split is ``"train"`` if ``u < fractions[0]``,
    ``"validation"`` if ``u < fractions[0] + fractions[1]``, else ``"test"``. The result depends only on
    the id, the fractions and the seed: it is stable across machines, Python versions and dataset
    subsets, and adding records never moves existing ones.
    """
    if len(fractions) != 3 or any((not isinstance(f, (int, float))) or f < 0 for f in fractions):
        raise ValueError(f"fractions must be three non-negative numbers (train, validation, test), got {fractions!r}.")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(fractions):g}).")
    digest = hashlib.sha256(f"{seed}:{record_id}".encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}.")


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")


def _skip(record_id: str, exc: Exception, dataset: str) -> None:
    warnings.warn(f"{dataset}: skipped record {record_id!r}: {exc}", ECGQualityWarning, stacklevel=3)


def _iter_guarded(
    items: Iterable[Any],
    load: Callable[[Any], ECGRecord | None],
    record_id_of: Callable[[Any], str],
    dataset: str,
    on_error: str,
    limit: int | None,
) -> Iterator[ECGRecord]:
    """Load each item, applying ``on_error`` and stopping after ``limit`` records."""
    count = 0
    if limit is not None and limit <= 0:
        return
    for item in items:
        try:
            record = load(item)
        except ECGInputError as exc:
            if on_error == "raise":
                raise
            _skip(record_id_of(item), exc, dataset)
            continue
        if record is None:
            continue
        yield record
        count += 1
        if limit is not None and count >= limit:
            return


def _require_dir(root: str | os.PathLike, dataset: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ECGFileNotFoundError(f"{dataset} data directory {_display(root)} does not exist or is not a directory.")
    return root


# ================================================================================================
# PTB-XL
# ================================================================================================

PTBXL_SPLIT_FOLDS: dict[str, tuple[int, ...]] = {"train": tuple(range(1, 9)), "validation": (9,), "test": (10,)}
_PTBXL_SUPERCLASSES = TASKS["ptbxl-super"].labels


def ptbxl_split(strat_fold: int) -> str:
    """Map a PTB-XL ``strat_fold`` to its split: 1-8 train, 9 validation, 10 test (the PTB-XL recommendation)."""
    for split, folds in PTBXL_SPLIT_FOLDS.items():
        if int(strat_fold) in folds:
            return split
    raise ECGInputError(f"PTB-XL strat_fold must be in 1..10, got {strat_fold!r}.")


def _ptbxl_fold(value, record_id: str) -> int:
    """``strat_fold`` as an int 1..10, or an ECGFileError naming the record."""
    try:
        fold = int(float(value))
    except (TypeError, ValueError):
        fold = None
    if fold is None or not 1 <= fold <= 10 or float(value) != fold:
        raise ECGFileError(
            f"PTB-XL record {record_id}: strat_fold is {value!r}; ptbxl_database.csv must give each record an integer "
            "fold 1..10 (8 training folds, 9 validation, 10 test)."
        )
    return fold


def load_ptbxl_metadata(root: str | os.PathLike):
    """Load ``ptbxl_database.csv`` (indexed by ``ecg_id``) and ``scp_statements.csv`` (indexed by code).

    Returns ``(database, statements)`` pandas DataFrames; ``database.scp_codes`` stays the raw string
    (parse with :func:`_parse_scp_codes` or ``ast.literal_eval``).
    """
    import pandas as pd

    root = _require_dir(root, "PTB-XL")
    db_path, st_path = root / "ptbxl_database.csv", root / "scp_statements.csv"
    for p in (db_path, st_path):
        if not p.is_file():
            raise ECGFileNotFoundError(
                f"PTB-XL: {_display(p)} is missing; point the reader at the PTB-XL root folder "
                "(the one holding ptbxl_database.csv, scp_statements.csv and records100/)."
            )
    try:
        database = pd.read_csv(db_path, index_col="ecg_id")
        statements = pd.read_csv(st_path, index_col=0)
    except Exception as exc:
        raise ECGFileError(f"PTB-XL: cannot parse {_display(db_path)} / {_display(st_path)}: {exc}.") from exc
    required = {"scp_codes", "strat_fold", "filename_lr", "filename_hr", "report"}
    missing = sorted(required - set(database.columns))
    if missing:
        raise ECGFileError(f"PTB-XL: {_display(db_path)} lacks columns {missing}.")
    missing = sorted({"diagnostic", "diagnostic_class", "description"} - set(statements.columns))
    if missing:
        raise ECGFileError(f"PTB-XL: {_display(st_path)} lacks columns {missing}.")
    return database, statements


def _parse_scp_codes(value: Any, record_id: str) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    try:
        parsed = ast.literal_eval(str(value))
        if not isinstance(parsed, dict):
            raise ValueError("not a dict")
        return {str(k): float(v) for k, v in parsed.items()}
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ECGFileError(
            f"PTB-XL record {record_id!r}: scp_codes {str(value)[:80]!r} is not a dict literal like \"{{'NORM': 100.0}}\" ({exc})."
        ) from None


def _diagnostic_class_map(statements: Any) -> dict[str, str]:
    if isinstance(statements, Mapping):
        return {str(k): str(v) for k, v in statements.items()}
    diagnostic = statements[statements["diagnostic"] == 1]
    return {str(code): str(cls) for code, cls in diagnostic["diagnostic_class"].items() if isinstance(cls, str)}


def ptbxl_superclass_labels(scp_codes: Mapping[str, float] | str, statements: Any) -> tuple[str, ...]:
    """Diagnostic superclasses of one PTB-XL record, as in the PTB-XL reference code.

    Every code of ``scp_codes`` (dict or its string form) that is a diagnostic statement
    (``diagnostic == 1`` in ``scp_statements.csv``) contributes its ``diagnostic_class``, whatever its
    likelihood. ``statements`` is the statements DataFrame or a mapping code -> class. Returns the
    classes in task order (NORM, MI, STTC, CD, HYP); empty if the record has no diagnostic code.
    """
    codes = _parse_scp_codes(scp_codes, "<scp_codes>") if isinstance(scp_codes, str) else scp_codes
    mapping = _diagnostic_class_map(statements)
    classes = {mapping[c] for c in codes if c in mapping}
    ordered = [c for c in _PTBXL_SUPERCLASSES if c in classes]
    return tuple(ordered + sorted(classes - set(ordered)))


def _normalise_folds(folds: Iterable[int] | str | int | None) -> set[int] | None:
    if folds is None:
        return None
    if isinstance(folds, str):
        if folds not in PTBXL_SPLIT_FOLDS:
            raise ValueError(f"PTB-XL folds must be fold numbers 1..10 or one of {SPLITS}, got {folds!r}.")
        return set(PTBXL_SPLIT_FOLDS[folds])
    if isinstance(folds, (int, np.integer)):
        folds = [folds]
    out = {int(f) for f in folds}
    if not out or not out <= set(range(1, 11)):
        raise ValueError(f"PTB-XL folds must be fold numbers in 1..10, got {sorted(out)}.")
    return out


def _clean_text(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    return " ".join(text.split())


def read_ptbxl(
    root: str | os.PathLike,
    sampling_rate: int = 100,
    array_file: str | os.PathLike | None = None,
    folds: Iterable[int] | str | int | None = None,
    *,
    require_labels: bool = False,
    ecg_ids: Iterable[int] | None = None,
    array_units: str = "normalized",
    limit: int | None = None,
    on_error: str = "raise",
) -> Iterator[ECGRecord]:
    """Yield PTB-XL records (ordered by ``ecg_id``) with their diagnostic-superclass labels.

    Args:
        root: folder with ``ptbxl_database.csv`` and ``scp_statements.csv`` (and ``records100/`` /
            ``records500/`` for WFDB signals).
        sampling_rate: 100 reads ``filename_lr`` (``records100/..._lr``), 500 reads ``filename_hr``.
        array_file: optional ``.npz`` with ``X`` (N, T, 12) time-first (or (N, 12, T)) and ``ecg_id`` (N,),
            absolute or relative to ``root``. Used automatically when the WFDB folder is absent and
            ``root`` holds exactly one ``.npz``. Its sampling rate is ``T / 10 s`` (PTB-XL records are 10 s).
        folds: ``strat_fold`` numbers, or a split name: ``"train"`` (1-8), ``"validation"`` (9), ``"test"`` (10).
        require_labels: drop records without any diagnostic superclass (as for the ``ptbxl-super`` task).
        ecg_ids: only these records.
        array_units: units of the array file's signals (the bundled subset is band-passed and z-scored:
            ``"normalized"``).
        limit: stop after this many records.
        on_error: ``"raise"`` or ``"skip"`` (warn and continue) for unreadable records.

    Each record has ``labels`` = superclasses and ``meta`` with ``ecg_id``, ``patient_id``, ``strat_fold``,
    ``split``, ``scp_codes`` (dict code -> likelihood), ``report`` (whitespace-normalised), ``age``, ``sex``.
    """
    _check_on_error(on_error)
    if sampling_rate not in (100, 500):
        raise ValueError(f"PTB-XL sampling_rate must be 100 or 500 (records100/records500), got {sampling_rate!r}.")
    root = _require_dir(root, "PTB-XL")
    database, statements = load_ptbxl_metadata(root)
    class_map = _diagnostic_class_map(statements)
    fold_set = _normalise_folds(folds)
    wanted_ids = {int(i) for i in ecg_ids} if ecg_ids is not None else None

    records_dir = root / f"records{sampling_rate}"
    if array_file is None and not records_dir.is_dir():
        npz = sorted(root.glob("*.npz"))
        if len(npz) == 1:
            array_file = npz[0]
            logger.info("PTB-XL: %s not found, reading signals from %s", records_dir, array_file)
        else:
            raise ECGFileNotFoundError(
                f"PTB-XL: no signals under {_display(root)}: {records_dir.name}/ is missing and "
                f"{'no' if not npz else 'several'} .npz array files were found; pass array_file=... or download the WFDB records."
            )

    arrays = None
    if array_file is not None:
        array_path = Path(array_file)
        if not array_path.is_absolute() and not array_path.exists():
            array_path = root / array_path
        arrays = _load_ptbxl_arrays(array_path)
        X, row_of = arrays
        ids = sorted(row_of)
        unknown = [i for i in ids if i not in database.index]
        if unknown:
            warnings.warn(
                f"PTB-XL: {len(unknown)} ecg_ids of {_display(array_path)} are not in ptbxl_database.csv and are skipped "
                f"(first: {unknown[:5]}).",
                ECGQualityWarning,
                stacklevel=2,
            )
            ids = [i for i in ids if i in database.index]
        time_first = X.shape[2] == len(STANDARD_LEADS)
        n_time = X.shape[1] if time_first else X.shape[2]
        array_fs = n_time / 10.0
    else:
        ids = sorted(int(i) for i in database.index)

    # Select by metadata before touching any signal.
    folds_col = database["strat_fold"]
    selected = []
    for ecg_id in ids:
        if wanted_ids is not None and ecg_id not in wanted_ids:
            continue
        if fold_set is not None and _ptbxl_fold(folds_col.at[ecg_id], str(ecg_id)) not in fold_set:
            continue
        selected.append(ecg_id)

    filename_col = "filename_lr" if sampling_rate == 100 else "filename_hr"

    def load(ecg_id: int) -> ECGRecord | None:
        row = database.loc[ecg_id]
        rid = str(ecg_id)
        codes = _parse_scp_codes(row["scp_codes"], rid)
        labels = ptbxl_superclass_labels(codes, class_map)
        if require_labels and not labels:
            return None
        fold = _ptbxl_fold(row["strat_fold"], rid)
        meta = {
            "ecg_id": int(ecg_id),
            "patient_id": None if _isnan(row.get("patient_id")) else int(row["patient_id"]),
            "strat_fold": fold,
            "split": ptbxl_split(fold),
            "scp_codes": codes,
            "report": _clean_text(row.get("report")),
            "age": None if _isnan(row.get("age")) else float(row["age"]),
            "sex": None if _isnan(row.get("sex")) else int(row["sex"]),
        }
        if arrays is not None:
            x = X[row_of[ecg_id]].astype(np.float32)
            signal = x.T if time_first else x
            meta["source_path"] = os.fspath(array_path)
            return ECGRecord(signal, array_fs, STANDARD_LEADS, rid, labels, meta, units=array_units)
        rel = row[filename_col]
        if not isinstance(rel, str) or not rel or os.path.isabs(rel) or ".." in Path(rel).parts or "\x00" in rel:
            raise ECGFileError(
                f"PTB-XL record {rid}: {filename_col} {str(rel)[:80]!r} in ptbxl_database.csv is not a relative path "
                "like 'records100/00000/00001_lr'."
            )
        record = read_record(root / (rel + ".hea"))
        record.record_id = rid
        record.labels = labels
        record.meta.update(meta)
        return record

    return _iter_guarded(selected, load, str, "PTB-XL", on_error, limit)


def _isnan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _load_ptbxl_arrays(path: Path) -> tuple[np.ndarray, dict[int, int]]:
    if not path.is_file():
        raise ECGFileNotFoundError(f"PTB-XL array file {_display(path)} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ECGFileError(f"{_display(path)} is a single array; expected an .npz with arrays 'X' and 'ecg_id'.")
            missing = sorted({"X", "ecg_id"} - set(npz.files))
            if missing:
                raise ECGFileError(f"{_display(path)} lacks arrays {missing} (found {npz.files}).")
            X, ids = npz["X"], npz["ecg_id"]
    except ECGInputError:
        raise
    except Exception as exc:
        raise ECGFileError(f"{_display(path)} is not a readable .npz archive ({type(exc).__name__}: {exc}).") from exc
    if X.ndim != 3 or len(STANDARD_LEADS) not in X.shape[1:] or X.shape[0] != ids.shape[0] or ids.ndim != 1:
        raise ECGFileError(
            f"{_display(path)}: expected X of shape (N, T, 12) or (N, 12, T) and ecg_id of shape (N,), got "
            f"X {X.shape} and ecg_id {ids.shape}."
        )
    row_of = {int(i): r for r, i in enumerate(ids)}
    if len(row_of) != len(ids):
        raise ECGFileError(f"{_display(path)}: ecg_id contains duplicates.")
    return X, row_of


# ================================================================================================
# CPSC2018
# ================================================================================================

_CPSC_LABELS = TASKS["cpsc2018"].labels
#: Original CPSC2018 REFERENCE.csv numeric labels 1..9, in task order.
CPSC2018_NUMERIC_LABELS: dict[int, str] = {i + 1: label for i, label in enumerate(_CPSC_LABELS)}
#: Lower-cased abbreviations and SNOMED CT codes (PhysioNet/CinC 2020 headers) -> task label.
CPSC2018_LABEL_ALIASES: dict[str, str] = {
    **{label.lower(): label for label in _CPSC_LABELS},
    "iavb": "I-AVB",
    "1avb": "I-AVB",
    "snr": "Normal",
    "nsr": "Normal",
    "sinus rhythm": "Normal",
    "426783006": "Normal",
    "164889003": "AF",
    "270492004": "I-AVB",
    "164909002": "LBBB",
    "59118001": "RBBB",
    "713427006": "RBBB",  # complete RBBB, scored as RBBB in CinC 2020
    "crbbb": "RBBB",
    "284470004": "PAC",
    "63593006": "PAC",  # supraventricular premature beats, scored as PAC in CinC 2020
    "164884008": "PVC",  # ventricular ectopics (the CinC 2020 code for CPSC's PVC)
    "427172004": "PVC",
    "17338001": "PVC",
    "429622005": "STD",
    "164931005": "STE",
}


def parse_cpsc2018_labels(dx: str | Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Parse a CPSC2018 diagnosis list (``"AF,RBBB"``, SNOMED codes or numeric 1..9).

    Returns ``(labels in task order, unrecognised entries)``.
    """
    items = dx.split(",") if isinstance(dx, str) else list(dx)
    found, unknown = set(), []
    for item in items:
        token = str(item).strip()
        if not token:
            continue
        key = token.lower()
        if key in CPSC2018_LABEL_ALIASES:
            found.add(CPSC2018_LABEL_ALIASES[key])
        else:
            unknown.append(token)
    return tuple(label for label in _CPSC_LABELS if label in found), tuple(unknown)


def _read_cpsc_reference(path: Path) -> dict[str, tuple[str, ...]]:
    """Original CPSC2018 REFERENCE.csv: Recording,First_label,Second_label,Third_label (numeric 1..9)."""
    labels: dict[str, tuple[str, ...]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ECGFileError(f"CPSC2018: cannot read {_display(path)} ({exc}).") from exc
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            continue
        rid = row[0].strip()
        values = []
        for cell in row[1:]:
            cell = cell.strip()
            if not cell:
                continue
            try:
                number = float(cell)
                if number != int(number) or int(number) not in CPSC2018_NUMERIC_LABELS:
                    raise ValueError
            except ValueError:
                raise ECGFileError(
                    f"CPSC2018: {_display(path)}, line {line_no} (record {rid}): label {cell!r} is not a number in 1..9 "
                    f"({', '.join(f'{k}={v}' for k, v in CPSC2018_NUMERIC_LABELS.items())})."
                ) from None
            values.append(CPSC2018_NUMERIC_LABELS[int(number)])
        labels[rid] = tuple(label for label in _CPSC_LABELS if label in values)
    return labels


def _is_cpsc_reference(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return first.strip().lower().startswith("recording")


def read_cpsc2018(
    root: str | os.PathLike,
    *,
    split: str | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    record_ids: Iterable[str] | None = None,
    drop_unlabeled: bool = True,
    limit: int | None = None,
    on_error: str = "raise",
) -> Iterator[ECGRecord]:
    """Yield CPSC2018 records (12 leads, 500 Hz, mV) with their task labels.

    Two layouts are understood:

    * PhysioNet/CinC 2020 (``A0001.hea`` + ``A0001.mat``): labels from the header's ``#Dx:`` line,
      as abbreviations (``AF,RBBB``) or SNOMED CT codes (``164889003,59118001``).
    * original CPSC2018: ``REFERENCE.csv`` (``Recording,First_label,Second_label,Third_label`` with
      numbers 1..9 = Normal, AF, I-AVB, LBBB, RBBB, PAC, PVC, STD, STE) with ``.mat`` files holding the
      struct ``ECG.data`` (or ``.hea``/``.mat`` pairs). When both REFERENCE.csv and a ``#Dx`` line exist they
      must agree: a record whose two label sources disagree raises :class:`ECGFileError` (or is skipped).

    ``split`` keeps only records that :func:`assign_split` (``fractions``, ``seed``) puts in that split
    (CPSC2018 has no official folds). Diagnoses outside the nine classes are kept in
    ``meta["other_dx"]``; records with none of the nine are dropped when ``drop_unlabeled``.
    """
    _check_on_error(on_error)
    _check_split(split)
    root = _require_dir(root, "CPSC2018")
    reference_path = root / "REFERENCE.csv"
    reference = _read_cpsc_reference(reference_path) if reference_path.is_file() and _is_cpsc_reference(reference_path) else None
    if reference is not None:
        ids = sorted(reference)
    else:
        ids = sorted(p.stem for p in root.glob("*.hea"))
        if not ids:
            raise ECGFileNotFoundError(
                f"CPSC2018: {_display(root)} holds neither WFDB headers (*.hea) nor an original-layout REFERENCE.csv."
            )
    if record_ids is not None:
        wanted = {str(r) for r in record_ids}
        ids = [i for i in ids if i in wanted]
    if split is not None:
        ids = [i for i in ids if assign_split(i, fractions, seed) == split]

    def load(rid: str) -> ECGRecord | None:
        hea = _record_path(root, rid, ".hea", "CPSC2018")
        if hea.is_file():
            record = read_record(hea)
        else:
            mat = _record_path(root, rid, ".mat", "CPSC2018")
            if not mat.is_file():
                raise ECGFileNotFoundError(f"CPSC2018 record {rid!r}: neither {hea.name} nor {mat.name} exists in {_display(root)}.")
            record = read_record(mat)
        record.record_id = rid
        if reference is not None:
            labels, other = reference[rid], ()
            dx = record.meta.get("header_info", {}).get("Dx")
            if dx is not None:
                header_labels, other = parse_cpsc2018_labels(dx)
                if set(header_labels) != set(labels):
                    raise ECGFileError(
                        f"CPSC2018 record {rid!r}: {_display(reference_path)} gives labels {list(labels)} but the "
                        f"header {_display(hea)} says '#Dx: {dx}' ({list(header_labels)}); the label files disagree. "
                        "Fix one of them, or pass on_error='skip' to leave the record out."
                    )
        else:
            dx = record.meta.get("header_info", {}).get("Dx")
            if dx is None:
                raise ECGFileError(f"CPSC2018 record {rid!r}: {_display(hea)} has no '#Dx:' comment line with the diagnoses.")
            labels, other = parse_cpsc2018_labels(dx)
        if not labels and drop_unlabeled:
            logger.info("CPSC2018: record %s has none of the nine classes (dx %s); dropped", rid, other)
            return None
        record.labels = labels
        record.meta.update({"split": assign_split(rid, fractions, seed), "other_dx": other})
        info = record.meta.get("header_info", {})
        for key in ("Age", "Sex"):
            if key in info:
                record.meta[key.lower()] = info[key]
        return record

    return _iter_guarded(ids, load, str, "CPSC2018", on_error, limit)


# ================================================================================================
# CinC 2017
# ================================================================================================

_CINC2017_LABELS = TASKS["cinc2017"].labels


def _read_cinc2017_reference(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ECGFileError(f"CinC2017: cannot read {_display(path)} ({exc}).") from exc
    labels: dict[str, str] = {}
    for line_no, row in enumerate(rows, start=1):
        if not row or not row[0].strip():
            continue
        if len(row) < 2:
            raise ECGFileError(f"CinC2017: {_display(path)}, line {line_no}: expected 'record,label', got {row!r}.")
        rid, label = row[0].strip(), row[1].strip()
        if label not in _CINC2017_LABELS:
            if line_no == 1 and rid.lower() in ("record", "recording", "name", "id"):
                continue  # header row
            raise ECGFileError(
                f"CinC2017: {_display(path)}, line {line_no}: label {label!r} of record {rid!r} is not one of {list(_CINC2017_LABELS)}."
            )
        if rid in labels and labels[rid] != label:
            raise ECGFileError(
                f"CinC2017: {_display(path)}, line {line_no}: record {rid!r} is labelled {label!r} here but "
                f"{labels[rid]!r} on an earlier line; the label file contradicts itself. Keep one line per record."
            )
        labels[rid] = label
    return labels


def read_cinc2017(
    root: str | os.PathLike,
    *,
    split: str | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    record_ids: Iterable[str] | None = None,
    limit: int | None = None,
    on_error: str = "raise",
) -> Iterator[ECGRecord]:
    """Yield PhysioNet/CinC 2017 single-lead records (lead ``"I"``, 300 Hz, mV) labelled N, A, O or ``~``.

    Labels come from ``REFERENCE.csv`` (``A00001,N``); signals from ``<id>.mat`` (key ``val``, int16,
    gain and baseline from ``<id>.hea``, whose timestamp the ``wfdb`` package cannot parse; without a
    header the CinC 2017 constants 300 Hz and 1000 ADC units/mV are used). Records without a label are
    not yielded. ``split`` filters by :func:`assign_split`.
    """
    _check_on_error(on_error)
    _check_split(split)
    root = _require_dir(root, "CinC2017")
    reference_path = root / "REFERENCE.csv"
    if not reference_path.is_file():
        raise ECGFileNotFoundError(f"CinC2017: {_display(reference_path)} (labels) is missing.")
    reference = _read_cinc2017_reference(reference_path)
    ids = sorted(reference)
    if record_ids is not None:
        wanted = {str(r) for r in record_ids}
        ids = [i for i in ids if i in wanted]
    if split is not None:
        ids = [i for i in ids if assign_split(i, fractions, seed) == split]

    def load(rid: str) -> ECGRecord:
        hea, mat = _record_path(root, rid, ".hea", "CinC2017"), _record_path(root, rid, ".mat", "CinC2017")
        if hea.is_file():
            record = read_record(hea, lead_names=("I",))
        elif mat.is_file():
            record = read_record(mat, lead_names=("I",), sampling_rate=300.0, gain=1000.0)
        else:
            raise ECGFileNotFoundError(f"CinC2017 record {rid!r}: {mat.name} does not exist in {_display(root)}.")
        if record.num_leads != 1:
            raise ECGFileError(f"CinC2017 record {rid!r}: expected 1 lead, found {record.num_leads}.")
        record.record_id = rid
        record.labels = (reference[rid],)
        record.meta["split"] = assign_split(rid, fractions, seed)
        return record

    return _iter_guarded(ids, load, str, "CinC2017", on_error, limit)


# ================================================================================================
# Chapman-Shaoxing
# ================================================================================================

#: Chapman-Shaoxing rhythm acronyms -> the four merged groups of the ``chapman`` task
#: (``SA`` is how Diagnostics.xlsx spells sinus irregularity, ``SI`` in the paper).
CHAPMAN_RHYTHM_GROUPS: dict[str, str] = {
    "SB": "SB",
    "AFIB": "AFIB",
    "AF": "AFIB",
    "SVT": "GSVT",
    "AT": "GSVT",
    "AVNRT": "GSVT",
    "AVRT": "GSVT",
    "SAAWR": "GSVT",
    "ST": "GSVT",
    "SR": "SR",
    "SI": "SR",
    "SA": "SR",
}


def chapman_rhythm_group(rhythm: str) -> str | None:
    """Merged rhythm group (SB, AFIB, GSVT, SR) of a Chapman rhythm acronym, or None if it is not used."""
    return CHAPMAN_RHYTHM_GROUPS.get(str(rhythm).strip().upper())


def _load_chapman_diagnostics(root: Path, diagnostics_file: str | os.PathLike | None):
    import pandas as pd

    if diagnostics_file is not None:
        path = Path(diagnostics_file)
        if not path.is_absolute():
            path = root / path
    else:
        candidates = [root / "Diagnostics.xlsx", root / "Diagnostics.csv"]
        path = next((c for c in candidates if c.is_file()), candidates[0])
    if not path.is_file():
        raise ECGFileNotFoundError(
            f"Chapman: {_display(path)} is missing; the Chapman-Shaoxing root holds Diagnostics.xlsx and ECGData/."
        )
    try:
        table = pd.read_excel(path) if path.suffix.lower() in (".xlsx", ".xls") else pd.read_csv(path)
    except Exception as exc:
        raise ECGFileError(f"Chapman: cannot read {_display(path)} ({type(exc).__name__}: {exc}).") from exc
    missing = sorted({"FileName", "Rhythm"} - set(table.columns))
    if missing:
        raise ECGFileError(f"Chapman: {_display(path)} lacks columns {missing}; found {list(table.columns)}.")
    return table, path


def read_chapman(
    root: str | os.PathLike,
    *,
    split: str | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    record_ids: Iterable[str] | None = None,
    signal_dir: str = "ECGData",
    diagnostics_file: str | os.PathLike | None = None,
    units: str = "uV",
    limit: int | None = None,
    on_error: str = "raise",
) -> Iterator[ECGRecord]:
    """Yield Chapman-Shaoxing records (12 leads, 500 Hz, converted from ``units`` to mV).

    Layout: ``Diagnostics.xlsx`` (or ``Diagnostics.csv``; columns ``FileName``, ``Rhythm``, ``Beat``,
    ``PatientAge``, ``Gender``, ``VentricularRate``, ...) and ``<signal_dir>/<FileName>.csv`` (12 columns
    I..V6, 5000 rows, microvolts). The rhythm is merged with :data:`CHAPMAN_RHYTHM_GROUPS` into SB, AFIB,
    GSVT, SR; rows with other rhythms are dropped and counted in a log message. ``split`` filters by
    :func:`assign_split` on ``FileName``.
    """
    _check_on_error(on_error)
    _check_split(split)
    root = _require_dir(root, "Chapman")
    table, diag_path = _load_chapman_diagnostics(root, diagnostics_file)
    wanted = {str(r) for r in record_ids} if record_ids is not None else None
    rows: list[tuple[str, str, dict[str, Any]]] = []
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    for row in table.to_dict(orient="records"):
        rid = str(row["FileName"]).strip()
        if not rid or rid.lower() == "nan":
            continue
        if rid in seen:
            raise ECGFileError(f"Chapman: {_display(diag_path)} lists FileName {rid!r} twice.")
        seen.add(rid)
        group = chapman_rhythm_group(row["Rhythm"])
        if group is None:
            dropped[str(row["Rhythm"]).strip()] += 1
            continue
        if wanted is not None and rid not in wanted:
            continue
        if split is not None and assign_split(rid, fractions, seed) != split:
            continue
        rows.append((rid, group, row))
    if dropped:
        logger.warning(
            "Chapman: dropped %d records whose rhythm is outside the four groups: %s",
            sum(dropped.values()),
            dict(sorted(dropped.items())),
        )
    signal_root = root / signal_dir

    def load(item: tuple[str, str, dict[str, Any]]) -> ECGRecord:
        rid, group, row = item
        path = _record_path(signal_root, rid, ".csv", "Chapman")
        if not path.is_file():
            raise ECGFileNotFoundError(f"Chapman record {rid!r}: {_display(path)} does not exist.")
        record = read_record(path, sampling_rate=500.0, units=units, record_id=rid)
        if record.num_samples == 0:
            raise ECGFileError(f"Chapman record {rid!r}: {_display(path)} holds no samples.")
        record.labels = (group,)
        meta = {
            "split": assign_split(rid, fractions, seed),
            "rhythm": str(row["Rhythm"]).strip(),
        }
        for key in ("Beat", "PatientAge", "Gender", "VentricularRate", "AtrialRate"):
            if key in row:
                value = row[key]
                meta[key] = None if _isnan(value) else (value.item() if hasattr(value, "item") else value)
        record.meta.update(meta)
        return record

    return _iter_guarded(rows, load, lambda item: item[0], "Chapman", on_error, limit)
