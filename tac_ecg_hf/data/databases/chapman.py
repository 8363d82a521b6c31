"""Chapman-Shaoxing (Zheng et al. 2020): 10,646 12-lead 500 Hz 10 s records with rhythm and beat labels."""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ECGFileError, ECGFileNotFoundError
from ..io import read_record
from ..labels import map_labels
from ..record import ECGRecord
from .base import ECGDatabase, plain_file

logger = logging.getLogger(__name__)

__all__ = ["Chapman"]

_META_COLUMNS = ("Beat", "PatientAge", "Gender", "VentricularRate", "AtrialRate", "QRSDuration", "QTInterval")


class Chapman(ECGDatabase):
    """Chapman-Shaoxing: ``Diagnostics.xlsx`` (or ``.csv``) and ``<signal_dir>/<FileName>.csv``.

    ``Diagnostics.xlsx`` has one row per record (``FileName``, ``Rhythm``, ``Beat``, ``PatientAge``, ``Gender``,
    ``VentricularRate``, ...); the signals are CSVs with a header row of the 12 lead names and 5000 rows in
    ``units`` (microvolts), converted to mV. ``record.labels`` is ``(Rhythm,)``, its acronym (``"AFIB"``, ``"ST"``,
    ...); the ``chapman`` task merges them into SB, AFIB, GSVT and SR (:mod:`~tac_ecg_hf.data.labels`). No
    official folds: splits come from :func:`~tac_ecg_hf.data.databases.assign_split` on ``FileName``.
    """

    name = "chapman"
    title = "Chapman"
    vocabulary = "chapman_rhythm"

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        signal_dir: str = "ECGData",
        diagnostics_file: str | os.PathLike | None = None,
        units: str = "uV",
        on_error: str = "raise",
        split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
        split_seed: int = 0,
    ) -> None:
        super().__init__(root, on_error=on_error, split_fractions=split_fractions, split_seed=split_seed)
        self.signal_root, self.units = self.root / signal_dir, units
        if diagnostics_file is not None:
            path = Path(diagnostics_file)
            self.diagnostics_path = path if path.is_absolute() else self.root / path
        else:
            candidates = [self.root / "Diagnostics.xlsx", self.root / "Diagnostics.csv"]
            self.diagnostics_path = next((c for c in candidates if c.is_file()), candidates[0])
        if not self.diagnostics_path.is_file():
            raise ECGFileNotFoundError(
                f"Chapman: {self.diagnostics_path} is missing; the Chapman-Shaoxing root holds Diagnostics.xlsx and "
                "ECGData/."
            )

    def has_signals(self) -> bool:
        return self.signal_root.is_dir() and any(self.signal_root.glob("*.csv"))

    @cached_property
    def diagnostics(self) -> dict[str, dict[str, Any]]:
        """``FileName`` -> its row of Diagnostics.xlsx (``Rhythm``, ``Beat``, ``PatientAge``, ...)."""
        import pandas as pd

        path = self.diagnostics_path
        try:
            table = pd.read_excel(path) if path.suffix.lower() in (".xlsx", ".xls") else pd.read_csv(path)
        except Exception as exc:  # pandas/openpyxl raise many exception types on bad files
            raise ECGFileError(f"Chapman: cannot read {path} ({type(exc).__name__}: {exc}).") from exc
        missing = sorted({"FileName", "Rhythm"} - set(table.columns))
        if missing:
            raise ECGFileError(f"Chapman: {path} lacks columns {missing}; found {list(table.columns)}.")
        rows: dict[str, dict[str, Any]] = {}
        for row in table.to_dict(orient="records"):
            rid = str(row["FileName"]).strip()
            if not rid or rid.lower() == "nan":
                continue
            if rid in rows:
                raise ECGFileError(f"Chapman: {path} lists FileName {rid!r} twice.")
            rows[rid] = row
        rhythms = (str(row["Rhythm"]).strip() for row in rows.values())
        unmapped = Counter(r for r in rhythms if map_labels(self.vocabulary, [r], "chapman") is None)
        if unmapped:
            logger.warning(
                "Chapman: %d records have rhythms outside the four chapman groups (no chapman label): %s",
                sum(unmapped.values()),
                dict(sorted(unmapped.items())),
            )
        return rows

    def _list_records(self) -> list[str]:
        return list(self.diagnostics)

    def labels_of(self, record_id: str) -> tuple[str, ...]:
        return (str(self.diagnostics[record_id]["Rhythm"]).strip(),)

    def _load(self, record_id: str) -> ECGRecord:
        row = self.diagnostics[record_id]
        path = plain_file(self.signal_root, record_id, ".csv", self.title)
        if not path.is_file():
            raise ECGFileNotFoundError(f"Chapman record {record_id!r}: {path} does not exist.")
        record = read_record(path, sampling_rate=500.0, units=self.units, record_id=record_id)
        rhythm = str(row["Rhythm"]).strip()
        record.labels = (rhythm,)
        record.meta["rhythm"] = rhythm
        for key in _META_COLUMNS:
            if key in row:
                value = row[key]
                value = value.item() if hasattr(value, "item") else value
                record.meta[key] = None if isinstance(value, float) and math.isnan(value) else value
        return record
