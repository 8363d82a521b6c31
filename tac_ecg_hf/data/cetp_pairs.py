"""ECG-text pairs for CETP (contrastive ECG-text pre-training) from any database reader.

The text of a record is :meth:`ECGDatabase.text <tac_ecg_hf.data.databases.ECGDatabase.text>`: for PTB-XL its
free-text ``report`` (mostly German), text composed from the English SCP-ECG statement descriptions of its
``scp_codes`` (``"sinus rhythm. normal ECG."``) or both; LUDB's English diagnosis statements; the SNOMED CT
descriptions of PhysioNet 2020 ``#Dx`` codes; CinC 2017 / CPSC2018 labels as English ("atrial fibrillation.");
MIMIC-IV-ECG's machine reports.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Iterator

import numpy as np

from .databases.base import ECGDatabase
from .databases.ptbxl import PTBXL, TEXT_SOURCES, scp_codes_to_text, statement_table
from .errors import ECGInputError
from .preprocessing import ECGPreprocessor
from .record import ECGRecord

logger = logging.getLogger(__name__)

__all__ = ["TEXT_SOURCES", "scp_codes_to_text", "record_text", "iter_cetp_pairs"]

# kept for tac_ecg_hf.data.builders, which imports it under this name
_statement_table = statement_table


def record_text(record: ECGRecord, statements: Any, text_source: str = "report", **scp_kwargs: Any) -> str:
    """The CETP text of a PTB-XL record (``""`` when it has none); ``statements`` as for :func:`scp_codes_to_text`."""
    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}.")
    report = record.meta.get("report", "") or ""
    if text_source == "report":
        return report
    scp = scp_codes_to_text(record.meta.get("scp_codes", {}), statements, **scp_kwargs)
    return scp if text_source == "scp" else " ".join(t for t in (scp, report) if t)


def iter_cetp_pairs(
    source: ECGDatabase | str | os.PathLike,
    text_source: str = "report",
    *,
    split: str | None = None,
    folds: Iterable[int] | str | None = None,
    sampling_rate: int = 100,
    array_file: str | os.PathLike | None = None,
    preprocessor: ECGPreprocessor | None = None,
    limit: int | None = None,
    on_error: str = "raise",
    **scp_kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Yield ``{"record_id", "input_values" (12, T) float32, "text"}`` for the records with non-empty text.

    ``source`` is a database reader (any :class:`~tac_ecg_hf.data.databases.ECGDatabase`) or a PTB-XL root
    (read as ``PTBXL(source, sampling_rate=, array_file=)``). ``split`` selects a split; ``folds`` (PTB-XL)
    selects ``strat_fold`` numbers or a split name. ``text_source`` and ``scp_kwargs`` (``qualify``,
    ``min_likelihood``) apply to PTB-XL texts. All records are used, with or without task labels.
    ``preprocessor`` defaults to :class:`ECGPreprocessor` (12 leads, 100 Hz, 1000 samples, z-scored).
    """
    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}.")
    if isinstance(source, ECGDatabase):
        db = source
    else:
        db = PTBXL(source, sampling_rate=sampling_rate, array_file=array_file)
    if isinstance(folds, str):
        split, folds = folds, None
    fold_set = {int(f) for f in ([folds] if isinstance(folds, int) else folds)} if folds is not None else None
    if fold_set is not None and not fold_set <= set(range(1, 11)):
        raise ValueError(f"PTB-XL folds must be fold numbers in 1..10, got {sorted(fold_set)}.")
    preprocessor = preprocessor or ECGPreprocessor()
    ids = [rid for rid in db.record_ids(split) if fold_set is None or db.fold_of(rid) in fold_set]
    count = empty = 0
    for record in db.records(record_ids=ids, on_error=on_error):
        text = db.text(record, text_source, **scp_kwargs) if isinstance(db, PTBXL) else db.text(record)
        if not text:
            empty += 1
            continue
        try:
            values = preprocessor(record)
        except ECGInputError:
            if on_error == "raise":
                raise
            logger.warning("CETP: skipped record %s", record.record_id)
            continue
        yield {"record_id": record.record_id, "input_values": np.asarray(values, dtype=np.float32), "text": text}
        count += 1
        if limit is not None and count >= limit:
            break
    if empty:
        logger.info("CETP: %d %s records without text were left out", empty, db.title)
