"""ECG-text pairs for CETP (contrastive ECG-text pre-training) from PTB-XL.

The text of a record is its free-text ``report`` (mostly German, some English/Swedish), text composed
from the English SCP-ECG statement descriptions of its ``scp_codes`` (``"sinus rhythm. normal ECG."``),
or both.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from .errors import ECGInputError
from .preprocessing import ECGPreprocessor
from .record import ECGRecord

logger = logging.getLogger(__name__)

__all__ = ["TEXT_SOURCES", "scp_codes_to_text", "record_text", "iter_cetp_pairs"]

TEXT_SOURCES = ("report", "scp", "both")


def _statement_table(statements: Any) -> dict[str, tuple[str, int]]:
    """code -> (description, rank) with rank 0 rhythm, 1 diagnostic, 2 form/other."""
    table: dict[str, tuple[str, int]] = {}
    for code, row in statements.iterrows():
        description = row.get("description")
        if not isinstance(description, str) or not description.strip():
            continue
        if row.get("rhythm") == 1:
            rank = 0
        elif row.get("diagnostic") == 1:
            rank = 1
        else:
            rank = 2
        table[str(code)] = (description.strip(), rank)
    return table


def scp_codes_to_text(
    scp_codes: Mapping[str, float],
    statements: Any,
    *,
    min_likelihood: float = 0.0,
    qualify: bool = False,
) -> str:
    """Compose English text from a record's SCP codes, e.g. ``{'NORM': 100, 'SR': 0}`` -> ``"sinus rhythm. normal ECG."``.

    ``statements`` is the ``scp_statements.csv`` DataFrame (index = code, columns ``description``,
    ``diagnostic``, ``rhythm``) or a precomputed mapping ``code -> (description, rank)``. Rhythm
    statements come first, then diagnostic, then form statements, each group by decreasing likelihood.
    Codes below ``min_likelihood`` or unknown to ``statements`` are left out (PTB-XL uses likelihood 0
    for "not stated", notably for rhythm codes, so the default keeps them). With ``qualify=True``,
    likelihoods strictly between 0 and 50 are prefixed "possible", 50 to 99 "probable".
    """
    table = statements if isinstance(statements, Mapping) else _statement_table(statements)
    items = []
    for order, (code, likelihood) in enumerate(scp_codes.items()):
        likelihood = float(likelihood)
        if code not in table or (not math.isnan(likelihood) and likelihood < min_likelihood):
            continue
        description, rank = table[code]
        items.append((rank, -likelihood if not math.isnan(likelihood) else 0.0, order, description, likelihood))
    parts = []
    for _, _, _, description, likelihood in sorted(items):
        if qualify and 0 < likelihood < 50:
            description = f"possible {description}"
        elif qualify and 50 <= likelihood < 100:
            description = f"probable {description}"
        if description not in parts:
            parts.append(description)
    return " ".join(f"{p.rstrip('.')}." for p in parts)


def record_text(record: ECGRecord, statements: Any, text_source: str = "report", **scp_kwargs: Any) -> str:
    """The CETP text of a PTB-XL record read by :func:`~tac_ecg_hf.data.readers.read_ptbxl`."""
    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}.")
    report = record.meta.get("report", "") or ""
    if text_source == "report":
        return report
    scp = scp_codes_to_text(record.meta.get("scp_codes", {}), statements, **scp_kwargs)
    if text_source == "scp":
        return scp
    return " ".join(t for t in (scp, report) if t)


def iter_cetp_pairs(
    root: str | os.PathLike,
    text_source: str = "report",
    *,
    folds: Iterable[int] | str | None = None,
    sampling_rate: int = 100,
    array_file: str | os.PathLike | None = None,
    preprocessor: ECGPreprocessor | None = None,
    limit: int | None = None,
    on_error: str = "raise",
    **scp_kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Yield ``{"record_id", "input_values" (12, T) float32, "text"}`` for PTB-XL records with non-empty text.

    All records are used, with or without a diagnostic superclass. ``preprocessor`` defaults to
    :class:`ECGPreprocessor` (12 leads, 100 Hz, 1000 samples, z-scored).
    """
    from .readers import load_ptbxl_metadata, read_ptbxl

    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}.")
    preprocessor = preprocessor or ECGPreprocessor()
    _, statements = load_ptbxl_metadata(root)
    table = _statement_table(statements)
    records = read_ptbxl(root, sampling_rate, array_file, folds, on_error=on_error)
    count = empty = 0
    for record in records:
        text = record_text(record, table, text_source, **scp_kwargs)
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
        logger.info("CETP: %d PTB-XL records without %s text were left out", empty, text_source)
