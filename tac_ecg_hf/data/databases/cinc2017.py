"""PhysioNet/CinC Challenge 2017: single-lead (AliveCor) 300 Hz records, 9-60 s, labelled N, A, O or ~."""

from __future__ import annotations

import csv
from functools import cached_property

from ...tasks import TASKS
from ..errors import ECGFileError, ECGFileNotFoundError
from ..io import read_record
from ..record import ECGRecord
from .base import ECGDatabase, plain_file

__all__ = ["CinC2017"]

_LABELS = TASKS["cinc2017"].labels


class CinC2017(ECGDatabase):
    """CinC 2017: labels in ``REFERENCE.csv`` (``A00001,N``), signals in ``<id>.mat`` (key ``val``) + ``<id>.hea``.

    Every record is one lead, named ``"I"``, in mV. The headers' timestamps, which wfdb cannot parse, are handled
    by :func:`~tac_ecg_hf.data.io.read_wfdb`; without a header the CinC 2017 constants 300 Hz and 1000 ADC
    units/mV are used. Only records listed in REFERENCE.csv are read. No official folds: splits come from
    :func:`~tac_ecg_hf.data.databases.assign_split`.
    """

    name = "cinc2017"
    title = "CinC2017"
    vocabulary = "cinc2017"

    def _locate(self) -> None:
        self.reference_path = self.root / "REFERENCE.csv"
        if not self.reference_path.is_file():
            raise ECGFileNotFoundError(f"CinC2017: {self.reference_path} (labels) is missing.")

    @cached_property
    def reference(self) -> dict[str, str]:
        """Record id -> label (N, A, O, ~) from REFERENCE.csv."""
        path = self.reference_path
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ECGFileError(f"CinC2017: cannot read {path} ({exc}).") from exc
        labels: dict[str, str] = {}
        for line_no, row in enumerate(rows, start=1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise ECGFileError(f"CinC2017: {path}, line {line_no}: expected 'record,label', got {row!r}.")
            rid, label = row[0].strip(), row[1].strip()
            if label not in _LABELS:
                if line_no == 1 and rid.lower() in ("record", "recording", "name", "id"):
                    continue  # header row
                raise ECGFileError(
                    f"CinC2017: {path}, line {line_no}: label {label!r} of record {rid!r} is not one of "
                    f"{list(_LABELS)}."
                )
            if labels.get(rid, label) != label:
                raise ECGFileError(
                    f"CinC2017: {path}, line {line_no}: record {rid!r} is labelled {label!r} here but "
                    f"{labels[rid]!r} on an earlier line; the label file contradicts itself. Keep one line per record."
                )
            labels[rid] = label
        return labels

    def _list_records(self) -> list[str]:
        return sorted(self.reference)

    def labels_of(self, record_id: str) -> tuple[str, ...]:
        return (self.reference[record_id],)

    def _load(self, record_id: str) -> ECGRecord:
        hea, mat = (plain_file(self.root, record_id, ext, self.title) for ext in (".hea", ".mat"))
        if hea.is_file():
            record = read_record(hea, lead_names=("I",))
        elif mat.is_file():
            record = read_record(mat, lead_names=("I",), sampling_rate=300.0, gain=1000.0)
        else:
            raise ECGFileNotFoundError(f"CinC2017 record {record_id!r}: {mat.name} does not exist in {self.root}.")
        record.labels = (self.reference[record_id],)
        return record
