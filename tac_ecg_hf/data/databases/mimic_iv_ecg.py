"""MIMIC-IV-ECG (Gow et al. 2023): about 800,000 12-lead 500 Hz 10 s records with machine-generated reports."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from ..errors import ECGFileError, ECGFileNotFoundError
from ..io import read_record
from ..record import ECGRecord
from .base import ECGDatabase, assign_split, relative_path

__all__ = ["MIMICIVECG"]

_REPORT_COLUMN = re.compile(r"^report_(\d+)$")


class MIMICIVECG(ECGDatabase):
    """MIMIC-IV-ECG: ``record_list.csv``, ``machine_measurements.csv`` and ``files/pNNNN/pNNNNNNNN/sNNNNNNNN/``.

    ``record_list.csv`` (``subject_id``, ``study_id``, ``file_name``, ``ecg_time``, ``path``) lists the records;
    ``path`` (e.g. ``files/p1000/p10000032/s40689238/40689238``) is the WFDB record. Record ids are the
    ``study_id``. ``machine_measurements.csv`` (optional) gives the machine report lines ``report_0`` ..
    ``report_17``, joined into ``meta["report"]`` and the CETP :meth:`text`. There are no diagnostic labels
    (``task_labels`` is None). Splits hash the ``subject_id`` (:func:`~tac_ecg_hf.data.databases.assign_split`),
    so all records of a patient share a split.
    """

    name = "mimic_iv_ecg"
    title = "MIMIC-IV-ECG"
    vocabulary = None

    def _locate(self) -> None:
        self.record_list_path = self.root / "record_list.csv"
        if not self.record_list_path.is_file():
            raise ECGFileNotFoundError(f"MIMIC-IV-ECG: {self.record_list_path} (the record index) is missing.")

    @staticmethod
    def _read_table(path, required: set[str]):
        import pandas as pd

        try:
            table = pd.read_csv(path, dtype={"subject_id": str, "study_id": str}, keep_default_na=False)
        except Exception as exc:  # pandas raises ParserError, UnicodeDecodeError ... on bad files
            raise ECGFileError(f"MIMIC-IV-ECG: cannot read {path} ({type(exc).__name__}: {exc}).") from exc
        missing = sorted(required - set(table.columns))
        if missing:
            raise ECGFileError(f"MIMIC-IV-ECG: {path} lacks columns {missing}; found {list(table.columns)}.")
        table["study_id"] = table["study_id"].str.strip()
        if table["study_id"].duplicated().any():
            raise ECGFileError(f"MIMIC-IV-ECG: {path} lists some study_ids twice.")
        return table.set_index("study_id", drop=False)

    @cached_property
    def record_list(self):
        """``record_list.csv`` indexed by ``study_id`` (str)."""
        return self._read_table(self.record_list_path, {"subject_id", "study_id", "ecg_time", "path"})

    @cached_property
    def reports(self) -> dict[str, str]:
        """``study_id`` -> the machine report (its ``report_*`` lines joined), from machine_measurements.csv."""
        path = self.root / "machine_measurements.csv"
        if not path.is_file():
            return {}
        table = self._read_table(path, {"study_id"})
        columns = sorted((c for c in table.columns if _REPORT_COLUMN.match(c)), key=lambda c: int(c.split("_")[1]))
        lines = table[columns].astype(str).map(str.strip) if columns else None
        reports: dict[str, str] = {}
        for study_id, values in (lines.iterrows() if lines is not None else ()):
            parts = [v for v in values if v and v.lower() != "nan"]
            reports[study_id] = " ".join(f"{p.rstrip('.')}." for p in parts)
        return reports

    def labels_of(self, record_id: str) -> tuple[str, ...]:
        return ()  # MIMIC-IV-ECG has no diagnostic labels, only machine reports

    def _list_records(self) -> list[str]:
        return list(self.record_list.index)

    def split_of(self, record_id: str) -> str:
        subject = self.record_list.at[str(record_id), "subject_id"]
        return assign_split(str(subject), self.split_fractions, self.split_seed)

    def _load(self, record_id: str) -> ECGRecord:
        row = self.record_list.loc[record_id]
        path = relative_path(self.root, str(row["path"]).strip(), "path", self.title, record_id)
        record = read_record(path.parent / f"{path.name}.hea")
        meta: dict[str, Any] = {
            "subject_id": str(row["subject_id"]),
            "study_id": record_id,
            "ecg_time": str(row["ecg_time"]),
            "report": self.reports.get(record_id, ""),
        }
        record.meta.update(meta)
        return record

    def text(self, record: ECGRecord) -> str | None:
        """The machine report (``report_0`` .. ``report_17`` of machine_measurements.csv), or None."""
        return record.meta.get("report") or None
