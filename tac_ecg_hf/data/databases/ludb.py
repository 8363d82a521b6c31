"""LUDB (Lobachevsky University Electrocardiography Database, Kalyakulina et al. 2020): 200 12-lead 500 Hz 10 s
records with English diagnosis statements and P/QRS/T delineation."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ECGFileError, ECGFileNotFoundError
from ..io import read_record, read_wfdb_header
from ..record import ECGRecord
from .base import ECGDatabase, plain_file

__all__ = ["LUDB"]


def diagnosis_statements(comments: Sequence[str]) -> tuple[str, ...]:
    """The diagnosis statements of a LUDB header: the comment lines after ``<diagnoses>:``, as written."""
    statements, inside = [], False
    for comment in comments:
        text = " ".join(str(comment).split())
        if text.lower().startswith("<diagnoses>"):
            inside = True
            continue
        if inside and text and not text.startswith("<"):
            statements.append(text)
    return tuple(statements)


class LUDB(ECGDatabase):
    """LUDB: ``RECORDS`` (``data/1`` ...) and ``data/<id>.hea`` + ``.dat`` (WFDB format 16, per-channel gains).

    The lower-case lead names (``i``, ``avr``, ``v1``) become the canonical ones (``I``, ``aVR``, ``V1``).
    ``record.labels`` are the English diagnosis statements of the header (``"Rhythm: Sinus bradycardia."``,
    ``"Left ventricular hypertrophy."``, ...; the same as the columns of ``ludb.csv``); they map to the tasks'
    classes through the ``ludb_text`` vocabulary, and are the CETP text. ``meta`` holds ``age`` and ``sex``. No
    official folds: splits come from :func:`~tac_ecg_hf.data.databases.assign_split`. The delineation files
    (``.i``, ``.ii``, ...) can be read with ``wfdb.rdann(path, "i")``.
    """

    name = "ludb"
    title = "LUDB"
    vocabulary = "ludb_text"

    def _locate(self) -> None:
        self.data_dir = self.root / "data" if (self.root / "data").is_dir() else self.root

    def _list_records(self) -> list[str]:
        listing = self.root / "RECORDS"
        if listing.is_file():
            try:
                names = listing.read_text(encoding="utf-8").split()
            except (OSError, UnicodeDecodeError) as exc:
                raise ECGFileError(f"LUDB: cannot read {listing} ({exc}).") from exc
            ids = [name.rsplit("/", 1)[-1] for name in names]
        else:
            ids = [p.stem for p in self.data_dir.glob("*.hea")]
        if not ids:
            raise ECGFileNotFoundError(f"LUDB: {self.root} holds no RECORDS file and no data/*.hea headers.")
        return sorted(dict.fromkeys(ids), key=lambda rid: (not rid.isdigit(), int(rid) if rid.isdigit() else 0, rid))

    def labels_of(self, record_id: str) -> tuple[str, ...]:
        header = read_wfdb_header(plain_file(self.data_dir, record_id, ".hea", self.title))
        return diagnosis_statements(header.comments or ())

    def _load(self, record_id: str) -> ECGRecord:
        record = read_record(plain_file(self.data_dir, record_id, ".hea", self.title))
        comments = record.meta.get("comments", ())
        record.labels = diagnosis_statements(comments)
        info = record.meta.get("header_info", {})
        for key in ("age", "sex"):
            value = info.get(f"<{key}>")
            if value:
                record.meta[key] = value
        return record

    def text(self, record: ECGRecord) -> str | None:
        """The record's diagnosis statements, joined (English)."""
        return " ".join(f"{s.rstrip('.')}." for s in record.labels) or None
