"""CPSC2018 (China Physiological Signal Challenge 2018): 12-lead 500 Hz records, 6-60 s, nine classes."""

from __future__ import annotations

import csv
from functools import cached_property

from ...tasks import TASKS
from ..errors import ECGFileError, ECGFileNotFoundError
from ..io import header_info, read_record, read_wfdb_header
from ..record import ECGRecord
from .base import ECGDatabase, combine_labels, plain_file

__all__ = ["CPSC2018", "CPSC2018_NUMERIC_LABELS"]

#: Original CPSC2018 REFERENCE.csv numeric labels 1..9.
CPSC2018_NUMERIC_LABELS: dict[int, str] = {i + 1: label for i, label in enumerate(TASKS["cpsc2018"].labels)}


def _dx_codes(dx: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in dx.split(",") if t.strip()))


class CPSC2018(ECGDatabase):
    """CPSC2018 in either of its layouts; ``record.labels`` are its abbreviations (``("AF", "RBBB")``).

    * PhysioNet/CinC 2020 (``A0001.hea`` + ``A0001.mat``): labels from the header's ``#Dx:`` line, as
      abbreviations (``AF,RBBB``) or SNOMED CT codes (``164889003,59118001``; the vocabulary is chosen per code).
    * original CPSC2018: ``REFERENCE.csv`` (``Recording,First_label,Second_label,Third_label``, numbers 1..9 =
      Normal, AF, I-AVB, LBBB, RBBB, PAC, PVC, STD, STE) with ``.mat`` files holding the struct ``ECG.data`` (or
      ``.hea``/``.mat`` pairs). When REFERENCE.csv and a ``#Dx`` line both exist they must agree: a record whose
      two label sources disagree raises :class:`ECGFileError` (or is skipped with ``on_error="skip"``).

    CPSC2018 has no official folds: splits come from :func:`~tac_ecg_hf.data.databases.assign_split`.
    ``meta`` holds ``age`` and ``sex`` from the header.
    """

    name = "cpsc2018"
    title = "CPSC2018"
    vocabulary = "cpsc2018"

    def _locate(self) -> None:
        self.reference_path = self.root / "REFERENCE.csv"

    @cached_property
    def reference(self) -> dict[str, tuple[str, ...]] | None:
        """Labels of the original-layout REFERENCE.csv (record id -> abbreviations), or None without one."""
        path = self.reference_path
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.reader(fh))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ECGFileError(f"CPSC2018: cannot read {path} ({exc}).") from exc
        if not rows or not rows[0] or not rows[0][0].strip().lower().startswith("recording"):
            return None  # not the original layout's label file
        labels: dict[str, tuple[str, ...]] = {}
        for line_no, row in enumerate(rows[1:], start=2):
            if not row or not row[0].strip():
                continue
            rid, values = row[0].strip(), []
            for cell in (c.strip() for c in row[1:]):
                if not cell:
                    continue
                try:
                    number = float(cell)
                    if number != int(number) or int(number) not in CPSC2018_NUMERIC_LABELS:
                        raise ValueError
                except (ValueError, OverflowError):
                    raise ECGFileError(
                        f"CPSC2018: {path}, line {line_no} (record {rid}): label {cell!r} is not a number in 1..9 "
                        f"({', '.join(f'{k}={v}' for k, v in CPSC2018_NUMERIC_LABELS.items())})."
                    ) from None
                values.append(CPSC2018_NUMERIC_LABELS[int(number)])
            labels[rid] = tuple(label for label in TASKS["cpsc2018"].labels if label in values)
        return labels

    def _list_records(self) -> list[str]:
        if self.reference is not None:
            return sorted(self.reference)
        ids = sorted(p.stem for p in self.root.glob("*.hea"))
        if not ids:
            raise ECGFileNotFoundError(
                f"CPSC2018: {self.root} holds neither WFDB headers (*.hea) nor an original-layout REFERENCE.csv."
            )
        return ids

    def _by_vocabulary(self, codes):
        """Abbreviations in the ``cpsc2018`` vocabulary, numeric codes in ``snomed``."""
        abbreviations, snomed = tuple(c for c in codes if not c.isdigit()), tuple(c for c in codes if c.isdigit())
        groups = (("cpsc2018", abbreviations), ("snomed", snomed))
        return [(vocabulary, group) for vocabulary, group in groups if group]

    def labels_of(self, record_id: str) -> tuple[str, ...]:
        if self.reference is not None:
            return self.reference[record_id]
        header = read_wfdb_header(plain_file(self.root, record_id, ".hea", self.title))
        dx = header_info(header.comments or ()).get("Dx")
        return _dx_codes(dx) if dx is not None else ()

    def _load(self, record_id: str) -> ECGRecord:
        hea = plain_file(self.root, record_id, ".hea", self.title)
        if hea.is_file():
            record = read_record(hea)
        else:
            mat = hea.with_suffix(".mat")
            if not mat.is_file():
                raise ECGFileNotFoundError(
                    f"CPSC2018 record {record_id!r}: neither {hea.name} nor {mat.name} exists in {self.root}."
                )
            record = read_record(mat)
        info = record.meta.get("header_info", {})
        dx = info.get("Dx")
        if self.reference is not None:
            labels = self.reference[record_id]
            if dx is not None:
                header_labels = combine_labels(self._by_vocabulary(_dx_codes(dx)), "cpsc2018") or ()
                if set(header_labels) != set(labels):
                    raise ECGFileError(
                        f"CPSC2018 record {record_id!r}: {self.reference_path} gives labels {list(labels)} but the "
                        f"header {hea} says '#Dx: {dx}' ({list(header_labels)}); the label files disagree. "
                        "Fix one of them, or pass on_error='skip' to leave the record out."
                    )
        elif dx is None:
            raise ECGFileError(f"CPSC2018 record {record_id!r}: {hea} has no '#Dx:' comment line with the diagnoses.")
        else:
            labels = _dx_codes(dx)
        record.labels = labels
        for key in ("Age", "Sex"):
            if key in info:
                record.meta[key.lower()] = info[key]
        return record

