"""WFDB records through :func:`wfdb.rdheader` / :func:`wfdb.rdrecord`, with bounds, clear errors and the CinC 2017 /
Georgia header workaround."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import ECGFileError, ECGFileNotFoundError, ECGInputError
from ..preprocessing import canonical_lead_name
from ..record import ECGRecord
from ._common import MAX_SIGNAL_VALUES, check_signal_gains, too_many, units_to_mv

__all__ = ["read_wfdb", "read_wfdb_header", "header_info", "header_path"]

_MAX_HEADER_BYTES = 1 << 20
# WFDB storage formats of fixed size (WFDB signal(5)): format -> (samples per group, bytes per group). Used to
# tell a truncated signal file before wfdb fails on it with a reshape error; compressed formats (FLAC 508, 516,
# 524) are left to wfdb.
_WFDB_FIXED_FORMATS = {
    "8": (1, 1), "80": (1, 1), "16": (1, 2), "61": (1, 2), "160": (1, 2), "24": (1, 3), "32": (1, 4),
    "212": (2, 3), "310": (3, 4), "311": (3, 4),
}
_WFDB_FORMATS = frozenset(_WFDB_FIXED_FORMATS) | {"508", "516", "524"}


def header_info(comments: Sequence[str]) -> dict[str, str]:
    """``#Key: value`` header comments as a dict (``{"Dx": "AF,RBBB", "Age": "61"}``); a key's first value wins."""
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
        raise ECGFileError(f"{hea}: signal file name {file_name!r} must be a relative path in the record's folder.")
    return hea.parent / file_name


@contextlib.contextmanager
def _wfdb_source(hea: Path, text: str | None = None) -> Iterator[tuple[str, Any]]:
    """Yield ``(record name to pass to wfdb, header)``: the record itself, or a repaired copy of its header.

    wfdb-python cannot parse the record line of some real headers (issues MIT-LCP/wfdb-python#128 and #351,
    tracked in the still open #415): CinC 2017's ``A00001 1 300 9000 2014-05-08 05:05:15`` (an ISO date after
    the time: "unconverted data remains") and Georgia's (CinC 2020) ``E00001.mat 12 500 5000 05-May-2020
    14:50:55`` (a record name with an extension: "invalid syntax in record line"). wfdb has no public parser
    for header text, so when it fails the record line is repaired in memory (base time/date dropped, extension
    stripped) and wfdb reads that header from a temporary folder, beside links to the record's signal files.
    """
    import wfdb

    text = _header_text(hea) if text is None else text
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


_SIGNAL_FORMAT = re.compile(r"^(\d+)(?:\+(\d+))?$")  # FORMAT[+BYTEOFFSET], no samples per frame, no skew


def _plain_header(text: str) -> SimpleNamespace | None:
    """The fields :func:`_check_wfdb_header` bounds, read from the text of a plain single-segment header (WFDB
    header(5): ``NAME NSIG [FS [NSAMP ...]]`` and ``FILE FORMAT[+OFFSET] ...`` per signal), or None for anything
    else (multi-segment records, samples per frame, skew, a record line wfdb may reject ...), which then goes
    through ``wfdb.rdheader`` first.

    Why not always ``wfdb.rdheader``: wfdb-python has no public way to read the signals of a header it has parsed,
    so checking a header with ``rdheader`` before ``rdrecord`` parses it twice, and at ~4 ms per 12-lead header
    (pandas lookups per field) that was a third of the time a bulk run spends reading a record. The fields read
    here are compared with wfdb's own parse after reading (:func:`_same_header`).
    """
    lines = [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines or len(lines[0]) < 2 or "/" in lines[0][0] or not lines[0][1].isdigit():
        return None
    record, signals = lines[0], lines[1:]
    n_sig = int(record[1])
    fs_token = record[2] if len(record) > 2 else "250"  # WFDB's default frequency
    if not re.fullmatch(r"\d+(\.\d*)?", fs_token) or (len(record) > 3 and not record[3].isdigit()):
        return None
    if n_sig < 1 or len(signals) != n_sig:
        return None  # rdheader's parse reports the inconsistency in its own words (see _check_wfdb_header)
    fmt, offset = [], []
    for tokens in signals:
        match = _SIGNAL_FORMAT.match(tokens[1]) if len(tokens) > 1 else None
        if match is None or "#" in tokens[0]:
            return None
        fmt.append(match.group(1))
        offset.append(int(match.group(2)) if match.group(2) else None)
    return SimpleNamespace(
        n_sig=n_sig,
        fs=int(fs_token) if fs_token.isdigit() else float(fs_token),  # as wfdb gives it
        sig_len=int(record[3]) if len(record) > 3 else None,
        file_name=[tokens[0] for tokens in signals],
        fmt=fmt,
        samps_per_frame=[1] * n_sig,
        byte_offset=offset,
        skew=[None] * n_sig,
    )


def _same_header(plain: SimpleNamespace, record: Any, hea: Path) -> None:
    """wfdb's parse must agree with :func:`_plain_header` on what the size checks used."""
    theirs = (record.n_sig, list(record.file_name), [str(f) for f in record.fmt],
              [o or None for o in record.byte_offset], [s or 1 for s in record.samps_per_frame])
    ours = (plain.n_sig, plain.file_name, plain.fmt, [o or None for o in plain.byte_offset], plain.samps_per_frame)
    if theirs != ours or (plain.sig_len is not None and record.sig_len != plain.sig_len):
        raise ECGFileError(f"{hea}: wfdb reads this header differently from its plain text; it is ambiguous.")


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
            n = header.sig_len
            what = f"the header declares {n_sig} signals x {n:,} samples ({n * n_sig:,} values)"
            raise too_many(hea, what, max_values)
        return
    n_lines = len(header.file_name or ())
    if n_lines != n_sig:
        raise ECGFileError(
            f"{hea}: the record line declares {n_sig} signals but the header has {n_lines} signal lines; "
            "the header is truncated or corrupt."
        )
    unknown = sorted({str(f) for f in header.fmt} - _WFDB_FORMATS)
    if unknown:
        known = sorted(_WFDB_FORMATS, key=int)
        raise ECGFileError(f"{hea}: unknown WFDB storage format(s) {unknown}; known: {known}.")
    spf = [int(s or 1) for s in header.samps_per_frame]
    sig_len = header.sig_len or 0
    if sig_len and sig_len * sum(spf) > max_values:
        what = f"the header declares {n_sig} signals x {sig_len:,} samples ({sig_len * sum(spf):,} values)"
        raise too_many(hea, what, max_values)
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
                raise ECGFileError(f"{hea}: format {fmt} of {file_name!r} needs the sample count in the record line.")
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
        raise too_many(hea, f"the signal files of its {n_sig} signals hold {n_values:,} samples", max_values)


def read_wfdb_header(path: str | os.PathLike) -> Any:
    """Read a WFDB header with :func:`wfdb.rdheader` (a ``wfdb.Record`` or ``wfdb.MultiRecord`` without signals).

    The record line of CinC 2017 and Georgia headers, which wfdb cannot parse, is repaired (see
    :func:`read_wfdb`). Raises :class:`ECGFileNotFoundError` or :class:`ECGFileError` naming the file.
    """
    hea = header_path(Path(path))
    with _wfdb_source(hea) as (_, header):
        return header


def header_path(path: Path) -> Path:
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
    check_signal_gains(record.adc_gain, names, hea)
    return record.dac(return_res=64)


def read_wfdb(
    path: str | os.PathLike, *, verify_checksum: bool = True, max_values: int = MAX_SIGNAL_VALUES
) -> ECGRecord:
    """Read a WFDB record (``x.hea``, ``x.dat``/``x.mat`` beside it, or ``x``) with :func:`wfdb.rdrecord`.

    Physical values ``(adc - baseline) / gain`` are converted to mV from the header's units (other units are
    kept, ``units="mixed"`` when they differ per lead, with ``meta["lead_units"]``). Invalid samples (the
    format's marker value) become NaN. Header checksums are verified (0, as in CinC 2017 headers, means "not
    recorded"). ``meta`` holds ``header_info`` (the ``#Key: value`` comments, e.g. ``Dx``, ``Age``, ``Sex``),
    ``comments``, ``raw_lead_names``, ``source_path`` and ``base_datetime`` (ISO text, when wfdb parsed one).
    """
    import wfdb

    hea = header_path(Path(path))
    text = _header_text(hea)
    plain, record, multi = _plain_header(text), None, False
    if plain is not None:  # one parse: bounded from the text, then read by wfdb (see _plain_header)
        _check_wfdb_header(plain, hea, max_values)
        with contextlib.suppress(Exception):  # any failure: the checked route below says what is wrong
            record = wfdb.rdrecord(os.fspath(hea)[: -len(hea.suffix)], physical=False, return_res=64)
        if record is not None:
            _same_header(plain, record, hea)
    if record is None:
        with _wfdb_source(hea, text) as (name, header):
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
        physical = np.asarray(record.p_signal, np.float64) if multi else _physical(record, names, hea, verify_checksum)
    except ECGInputError:
        raise
    except Exception as exc:  # wfdb's conversion fails on values it accepted while reading
        raise ECGFileError(f"{hea}: cannot convert the record's samples ({type(exc).__name__}: {exc}).") from exc
    lead_units = []
    for i, unit in enumerate(units):
        factor = units_to_mv(unit)
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
