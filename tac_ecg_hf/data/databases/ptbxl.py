"""PTB-XL (Wagner et al. 2020): 21,837 12-lead 10 s records, SCP-ECG statements, free-text reports, 10 folds."""

from __future__ import annotations

import ast
import logging
import math
import os
import warnings
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ...tasks import STANDARD_LEADS
from ..errors import ECGFileError, ECGFileNotFoundError, ECGInputError, ECGQualityWarning
from ..io import read_record
from ..labels import map_labels
from ..record import ECGRecord
from .base import ECGDatabase, relative_path

logger = logging.getLogger(__name__)

__all__ = ["PTBXL", "PTBXL_SPLIT_FOLDS", "TEXT_SOURCES", "ptbxl_split", "scp_codes_to_text", "statement_table"]

#: PTB-XL's recommended use of ``strat_fold``: 1-8 train, 9 validation, 10 test.
PTBXL_SPLIT_FOLDS: dict[str, tuple[int, ...]] = {"train": tuple(range(1, 9)), "validation": (9,), "test": (10,)}
TEXT_SOURCES = ("report", "scp", "both")
#: pass band of the signals in the bundled array file (band-passed and z-scored upstream)
ARRAY_BANDPASS = (0.5, 40.0)


def ptbxl_split(strat_fold: int) -> str:
    """Map a PTB-XL ``strat_fold`` to its split: 1-8 train, 9 validation, 10 test."""
    for split, folds in PTBXL_SPLIT_FOLDS.items():
        if int(strat_fold) in folds:
            return split
    raise ECGInputError(f"PTB-XL strat_fold must be in 1..10, got {strat_fold!r}.")


def statement_table(statements: Any) -> dict[str, tuple[str, int]]:
    """``code -> (description, rank)`` from ``scp_statements.csv``, rank 0 rhythm, 1 diagnostic, 2 form/other."""
    table: dict[str, tuple[str, int]] = {}
    for code, row in statements.iterrows():
        description = row.get("description")
        if not isinstance(description, str) or not description.strip():
            continue
        rank = 0 if row.get("rhythm") == 1 else 1 if row.get("diagnostic") == 1 else 2
        table[str(code)] = (description.strip(), rank)
    return table


def scp_codes_to_text(
    scp_codes: Mapping[str, float], statements: Any, *, min_likelihood: float = 0.0, qualify: bool = False
) -> str:
    """English text from a record's SCP codes: ``{'NORM': 100, 'SR': 0}`` -> ``"sinus rhythm. normal ECG."``.

    ``statements`` is the ``scp_statements.csv`` DataFrame or a :func:`statement_table`. Rhythm statements come
    first, then diagnostic, then form statements, each group by decreasing likelihood. Codes below
    ``min_likelihood`` or unknown to ``statements`` are left out (PTB-XL uses likelihood 0 for "not stated",
    notably for rhythm codes, so the default keeps them). With ``qualify=True``, likelihoods strictly between 0
    and 50 are prefixed "possible", 50 to 99 "probable".
    """
    table = statements if isinstance(statements, Mapping) else statement_table(statements)
    items = []
    for order, (code, likelihood) in enumerate(scp_codes.items()):
        likelihood = float(likelihood)
        if code not in table or (not math.isnan(likelihood) and likelihood < min_likelihood):
            continue
        description, rank = table[code]
        items.append((rank, -likelihood if not math.isnan(likelihood) else 0.0, order, description, likelihood))
    parts: list[str] = []
    for _, _, _, description, likelihood in sorted(items):
        if qualify and 0 < likelihood < 50:
            description = f"possible {description}"
        elif qualify and 50 <= likelihood < 100:
            description = f"probable {description}"
        if description not in parts:
            parts.append(description)
    return " ".join(f"{p.rstrip('.')}." for p in parts)


def _parse_scp_codes(value: Any, record_id: str) -> dict[str, float]:
    try:
        parsed = ast.literal_eval(str(value))
        if not isinstance(parsed, dict):
            raise ValueError("not a dict")
        return {str(k): float(v) for k, v in parsed.items()}
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ECGFileError(
            f"PTB-XL record {record_id}: scp_codes {str(value)[:80]!r} is not a dict literal like "
            f"\"{{'NORM': 100.0}}\" ({exc})."
        ) from None


def _optional(value: Any, kind: type) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        return None


class PTBXL(ECGDatabase):
    """PTB-XL: ``ptbxl_database.csv`` + ``scp_statements.csv``, signals as WFDB records or an ``.npz`` array file.

    Args:
        root: folder with ``ptbxl_database.csv``, ``scp_statements.csv`` and ``records100/`` / ``records500/``.
        sampling_rate: 100 reads ``filename_lr`` (``records100/..._lr``), 500 reads ``filename_hr``.
        array_file: an ``.npz`` with ``X`` (N, T, 12) time-first (or (N, 12, T)) and ``ecg_id`` (N,), absolute or
            relative to ``root``; used automatically when the WFDB folder is absent and ``root`` holds exactly one
            ``.npz``. Its sampling rate is ``T / 10 s``; its signals are band-passed 0.5-40 Hz and z-scored
            upstream: ``units=array_units`` (``"normalized"``) and ``meta["bandpassed"] = (0.5, 40.0)``.
        text_source: the CETP text of :meth:`text`: the free-text ``"report"`` (mostly German), ``"scp"`` (English
            SCP statement descriptions) or ``"both"``.

    ``record.labels`` are the record's SCP codes; ``meta`` holds ``ecg_id``, ``patient_id``, ``strat_fold``,
    ``split``, ``scp_codes`` (code -> likelihood), ``superclasses`` (its ``ptbxl-super`` classes), ``report``,
    ``age``, ``sex``. Splits follow ``strat_fold``: 1-8 train, 9 validation, 10 test.
    """

    name = "ptbxl"
    title = "PTB-XL"
    vocabulary = "ptbxl_scp"

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        sampling_rate: int = 100,
        array_file: str | os.PathLike | None = None,
        array_units: str = "normalized",
        text_source: str = "report",
        on_error: str = "raise",
    ) -> None:
        super().__init__(root, on_error=on_error)
        if sampling_rate not in (100, 500):
            raise ValueError(
                f"PTB-XL sampling_rate must be 100 or 500 (records100/ or records500/), got {sampling_rate!r}."
            )
        if text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}.")
        self.sampling_rate, self.array_units, self.text_source = sampling_rate, array_units, text_source
        self._array_file = array_file
        self.database, self.statements = self._load_metadata()

    # -- metadata -------------------------------------------------------------------------------------------------

    def _load_metadata(self):
        import pandas as pd

        db_path, st_path = self.root / "ptbxl_database.csv", self.root / "scp_statements.csv"
        for path in (db_path, st_path):
            if not path.is_file():
                raise ECGFileNotFoundError(
                    f"PTB-XL: {path} is missing; point the reader at the PTB-XL root folder "
                    "(the one holding ptbxl_database.csv, scp_statements.csv and records100/)."
                )
        try:
            database = pd.read_csv(db_path, index_col="ecg_id")
            statements = pd.read_csv(st_path, index_col=0)
        except Exception as exc:  # pandas raises ParserError, ValueError, UnicodeDecodeError ... on bad files
            raise ECGFileError(f"PTB-XL: cannot parse {db_path} / {st_path}: {exc}.") from exc
        missing = sorted({"scp_codes", "strat_fold", "filename_lr", "filename_hr", "report"} - set(database.columns))
        if missing:
            raise ECGFileError(f"PTB-XL: {db_path} lacks columns {missing}.")
        missing = sorted({"diagnostic", "diagnostic_class", "description"} - set(statements.columns))
        if missing:
            raise ECGFileError(f"PTB-XL: {st_path} lacks columns {missing}.")
        try:
            database.index = database.index.astype(np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ECGFileError(f"PTB-XL: {db_path} has ecg_ids that are not integers ({exc}).") from exc
        if not database.index.is_unique:
            raise ECGFileError(f"PTB-XL: {db_path} lists some ecg_ids twice.")
        return database.sort_index(), statements

    @cached_property
    def _statement_table(self) -> dict[str, tuple[str, int]]:
        return statement_table(self.statements)

    def _row(self, record_id: str):
        try:
            return self.database.loc[int(record_id)]
        except (KeyError, ValueError):
            raise KeyError(f"PTB-XL: ecg_id {record_id!r} is not in {self.root / 'ptbxl_database.csv'}.") from None

    def has_ecg_id(self, ecg_id: int) -> bool:
        return int(ecg_id) in self.database.index

    def scp_codes(self, record_id: str) -> dict[str, float]:
        """The record's SCP codes (code -> likelihood), from the database alone."""
        return _parse_scp_codes(self._row(record_id)["scp_codes"], record_id)

    def labels_of(self, record_id: str) -> tuple[str, ...]:
        return tuple(self.scp_codes(record_id))

    def fold_of(self, record_id: str) -> int:
        value = self._row(record_id)["strat_fold"]
        value = value.item() if isinstance(value, np.generic) else value
        try:
            fold = int(float(value))
        except (TypeError, ValueError, OverflowError):
            fold = None
        if fold is None or not 1 <= fold <= 10 or float(value) != fold:
            raise ECGFileError(
                f"PTB-XL record {record_id}: strat_fold is {value!r}; ptbxl_database.csv must give each record an "
                "integer fold 1..10 (8 training folds, 9 validation, 10 test)."
            )
        return fold

    def split_of(self, record_id: str) -> str:
        return ptbxl_split(self.fold_of(record_id))

    def metadata(self, record_id: str) -> dict[str, Any]:
        """``meta`` of a record without reading its signal (``labels`` are ``meta["scp_codes"]``)."""
        row, fold = self._row(record_id), self.fold_of(record_id)
        codes = self.scp_codes(record_id)
        report = row.get("report")
        return {
            "ecg_id": int(record_id),
            "patient_id": _optional(row.get("patient_id"), int),
            "strat_fold": fold,
            "split": ptbxl_split(fold),
            "scp_codes": codes,
            "superclasses": self._superclasses(codes),
            "report": " ".join(report.split()) if isinstance(report, str) else "",
            "age": _optional(row.get("age"), float),
            "sex": _optional(row.get("sex"), int),
        }

    @staticmethod
    def _superclasses(codes) -> tuple[str, ...]:
        return map_labels("ptbxl_scp", codes, "ptbxl-super") or ()

    # -- signals --------------------------------------------------------------------------------------------------

    @cached_property
    def _arrays(self) -> tuple[Path, np.ndarray, dict[int, int]] | None:
        """``(path, X, row_of_ecg_id)`` of the array file in use, or None for WFDB records."""
        array_file = self._array_file
        records_dir = self.root / f"records{self.sampling_rate}"
        if array_file is None:
            if records_dir.is_dir():
                return None
            found = sorted(self.root.glob("*.npz"))
            if len(found) != 1:
                raise ECGFileNotFoundError(
                    f"PTB-XL: no signals under {self.root}: {records_dir.name}/ is missing and "
                    f"{'no' if not found else 'several'} .npz array files were found; pass array_file=... or download "
                    "the WFDB records."
                )
            array_file = found[0]
            logger.info("PTB-XL: %s not found, reading signals from %s", records_dir, array_file)
        path = Path(array_file)
        if not path.is_absolute() and not path.exists():
            path = self.root / path
        if not path.is_file():
            raise ECGFileNotFoundError(f"PTB-XL array file {path} does not exist.")
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = sorted({"X", "ecg_id"} - set(npz.files))
                if missing:
                    raise ECGFileError(f"{path} lacks arrays {missing} (found {npz.files}).")
                X, ids = npz["X"], npz["ecg_id"]
        except ECGInputError:
            raise
        except Exception as exc:  # numpy raises ValueError, zipfile.BadZipFile, AttributeError ... on bad files
            raise ECGFileError(f"{path} is not a readable .npz archive ({type(exc).__name__}: {exc}).") from exc
        n_leads = len(STANDARD_LEADS)
        shape_ok = X.ndim == 3 and n_leads in X.shape[1:] and ids.ndim == 1 and X.shape[0] == ids.shape[0]
        if not shape_ok or ids.dtype.kind not in "iu":
            raise ECGFileError(
                f"{path}: expected X of shape (N, T, 12) or (N, 12, T) and integer ecg_id of shape (N,), got X "
                f"{X.shape} and ecg_id {ids.shape} {ids.dtype}."
            )
        row_of = {int(i): r for r, i in enumerate(ids)}
        if len(row_of) != len(ids):
            raise ECGFileError(f"{path}: ecg_id contains duplicates.")
        return path, X, row_of

    def _list_records(self) -> list[str]:
        if self._arrays is None:
            return [str(i) for i in self.database.index]
        path, _, row_of = self._arrays
        ids = sorted(row_of)
        unknown = [i for i in ids if i not in self.database.index]
        if unknown:
            warnings.warn(
                f"PTB-XL: {len(unknown)} ecg_ids of {path} are not in ptbxl_database.csv and are skipped "
                f"(first: {unknown[:5]}).",
                ECGQualityWarning,
                stacklevel=4,
            )
        return [str(i) for i in ids if i in self.database.index]

    def _load(self, record_id: str) -> ECGRecord:
        meta = self.metadata(record_id)
        labels = tuple(meta["scp_codes"])
        if self._arrays is not None:
            path, X, row_of = self._arrays
            x = X[row_of[int(record_id)]].astype(np.float32)
            time_first = X.shape[2] == len(STANDARD_LEADS)
            meta.update(source_path=os.fspath(path), bandpassed=ARRAY_BANDPASS)
            fs = X.shape[1 if time_first else 2] / 10.0  # PTB-XL records are 10 s long
            signal = x.T if time_first else x
            return ECGRecord(signal, fs, STANDARD_LEADS, record_id, labels, meta, units=self.array_units)
        column = "filename_lr" if self.sampling_rate == 100 else "filename_hr"
        path = relative_path(self.root, self._row(record_id)[column], column, "PTB-XL", record_id)
        record = read_record(path.parent / f"{path.name}.hea")
        record.labels = labels
        record.meta.update(meta)
        return record

    # -- labels and text ------------------------------------------------------------------------------------------

    def text(self, record: ECGRecord, text_source: str | None = None, **scp_kwargs: Any) -> str | None:
        """The report, the English SCP text (:func:`scp_codes_to_text`) or both (``text_source``), None if empty."""
        text_source = text_source or self.text_source
        if text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}.")
        report = record.meta.get("report") or ""
        scp = "" if text_source == "report" else scp_codes_to_text(
            record.meta.get("scp_codes", {}), self._statement_table, **scp_kwargs
        )
        parts = {"report": [report], "scp": [scp], "both": [scp, report]}[text_source]
        return " ".join(p for p in parts if p) or None
