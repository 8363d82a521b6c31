"""Read one ECG file into an :class:`~tac_ecg_hf.data.record.ECGRecord` (float32 ``(leads, samples)``, in mV).

The libraries do the reading: WFDB records (every storage format, multi-segment records, the ``.mat`` signal
files of the PhysioNet/CinC challenges) through :func:`wfdb.rdheader` / :func:`wfdb.rdrecord`
(:mod:`.wfdb_records`), ``.npy`` through ``np.load(allow_pickle=False)``, CSV through :func:`pandas.read_csv` and
bare MATLAB files through :func:`scipy.io.loadmat` (:mod:`.arrays`). Nothing is unpickled. Around them:

* sizes are bounded before anything is allocated: a header, an ``.npy`` header, a ``.mat`` variable table or a
  CSV file size that implies more than ``max_values`` (default :data:`MAX_SIGNAL_VALUES`) samples is refused
  with :class:`~tac_ecg_hf.data.errors.ECGInputError`;
* corrupt, truncated or inconsistent files raise :class:`~tac_ecg_hf.data.errors.ECGFileError` naming the file
  (the libraries' exceptions are wrapped, their message kept), missing ones ``ECGFileNotFoundError``;
* physical units are converted to mV, lead names to their canonical spelling (``"AVL"`` -> ``"aVL"``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ECGFileError, ECGFileNotFoundError, ECGInputError
from ..preprocessing import canonical_lead_name
from ..record import ECGRecord
from ._common import MAX_SIGNAL_VALUES
from .arrays import array_record, load_npy, load_sidecar, orient, read_bare_mat, read_csv
from .wfdb_records import header_info, read_wfdb, read_wfdb_header

__all__ = ["MAX_SIGNAL_VALUES", "read_record", "read_wfdb", "read_wfdb_header", "header_info"]

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
                supported = ", ".join(_KNOWN_SUFFIXES)
                raise ECGFileError(f"{path}: unsupported file type {path.suffix!r}; supported: {supported}.")
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
        sidecar = load_sidecar(path)
        names = lead_names if lead_names is not None else sidecar.get("lead_names")
        fs = sampling_rate if sampling_rate is not None else sidecar.get("sampling_rate")
        units = units if units is not None else sidecar.get("units")
        gain = gain if gain is not None else sidecar.get("gain")
        baseline = baseline if baseline else sidecar.get("baseline", 0.0)
        layout = layout if layout is not None else sidecar.get("layout")
        rid = record_id or sidecar.get("record_id")
        if suffix == ".npy":
            array, names = orient(load_npy(path, max_values), path, names, layout)
            record = array_record(path, array, names, fs, rid, gain, baseline, units)
        elif suffix == ".csv":
            record = read_csv(path, names, fs, units, gain, baseline, rid, max_values)
        else:
            record = read_bare_mat(path, names, fs, units, gain, baseline, layout, rid, max_values)
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
