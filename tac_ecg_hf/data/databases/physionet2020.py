"""PhysioNet/CinC Challenge 2020/2021 format: ``.hea`` + ``.mat`` (key ``val``) records with SNOMED CT labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from ..errors import ECGFileError, ECGFileNotFoundError
from ..io import header_info, read_record, read_wfdb_header
from ..record import ECGRecord
from .base import ECGDatabase
from .cpsc2018 import _dx_codes
from .ptbxl import PTBXL

__all__ = ["PhysioNet2020", "CHALLENGE_SOURCES"]

#: record-name prefix -> source database of the 2020/2021 challenge data (two-letter prefixes first)
CHALLENGE_SOURCES: dict[str, str] = {
    "HR": "PTB-XL",
    "JS": "Ningbo",
    "A": "CPSC",
    "Q": "CPSC-Extra",
    "I": "St Petersburg INCART",
    "S": "PTB",
    "E": "Georgia",
    "J": "Chapman-Shaoxing",
}


def challenge_source(record_id: str) -> str | None:
    """The source database of a challenge record, from its name (``"HR00009"`` -> ``"PTB-XL"``)."""
    return next((source for prefix, source in CHALLENGE_SOURCES.items() if record_id.startswith(prefix)), None)


class PhysioNet2020(ECGDatabase):
    """The PhysioNet/CinC 2020-2021 challenge data: ``*.hea`` + ``*.mat`` anywhere under ``root``.

    ``record.labels`` are the SNOMED CT codes of the header's ``#Dx:`` line (empty when it is empty); ``meta``
    holds ``source`` (CPSC, CPSC-Extra, Georgia, PTB, PTB-XL, ...), ``dx``, ``age`` and ``sex``. Gains come from
    the headers (PTB's ``S*`` records: 1000 Hz, 2,000,000 ADC units/mV).

    ``HRnnnnn`` records are PTB-XL's ``ecg_id`` nnnnn at 500 Hz: given ``ptbxl_root`` (a folder with
    ``ptbxl_database.csv`` and ``scp_statements.csv``), their labels are PTB-XL's SCP codes, with its report and
    ``strat_fold`` (and split 1-8/9/10) in ``meta``, as for :class:`~tac_ecg_hf.data.databases.PTBXL`. The other
    records, which have no official folds, are split by :func:`~tac_ecg_hf.data.databases.assign_split`.
    """

    name = "physionet2020"
    title = "PhysioNet2020"
    vocabulary = "snomed"

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        ptbxl_root: str | os.PathLike | None = None,
        text_source: str = "report",
        on_error: str = "raise",
        split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
        split_seed: int = 0,
    ) -> None:
        super().__init__(root, on_error=on_error, split_fractions=split_fractions, split_seed=split_seed)
        self.ptbxl = PTBXL(ptbxl_root, text_source=text_source) if ptbxl_root is not None else None

    @cached_property
    def _paths(self) -> dict[str, Path]:
        paths: dict[str, Path] = {}
        for hea in sorted(self.root.rglob("*.hea")):
            if hea.stem in paths:
                raise ECGFileError(f"PhysioNet2020: record {hea.stem!r} exists twice: {paths[hea.stem]} and {hea}.")
            paths[hea.stem] = hea
        if not paths:
            raise ECGFileNotFoundError(f"PhysioNet2020: no WFDB headers (*.hea) under {self.root}.")
        return paths

    def _list_records(self) -> list[str]:
        return list(self._paths)

    def ptbxl_id(self, record_id: str) -> str | None:
        """The PTB-XL ``ecg_id`` of an ``HRnnnnn`` record, when a PTB-XL database is given and lists it."""
        digits = record_id[2:]
        if self.ptbxl is None or not record_id.startswith("HR") or not digits.isdigit():
            return None
        return str(int(digits)) if self.ptbxl.has_ecg_id(int(digits)) else None

    def split_of(self, record_id: str) -> str:
        ecg_id = self.ptbxl_id(record_id)
        return self.ptbxl.split_of(ecg_id) if ecg_id is not None else super().split_of(record_id)

    def fold_of(self, record_id: str) -> int | None:
        ecg_id = self.ptbxl_id(record_id)
        return self.ptbxl.fold_of(ecg_id) if ecg_id is not None else None

    def _load(self, record_id: str) -> ECGRecord:
        record = read_record(self._paths[record_id])
        info = record.meta.get("header_info", {})
        dx = _dx_codes(info.get("Dx", ""))
        record.labels = dx
        record.meta.update(source=challenge_source(record_id), dx=dx, age=info.get("Age"), sex=info.get("Sex"))
        ecg_id = self.ptbxl_id(record_id)
        if ecg_id is not None:
            meta = self.ptbxl.metadata(ecg_id)
            record.labels = tuple(meta["scp_codes"])
            record.meta.update(meta)
        return record

    def label_codes(self, record: ECGRecord | str) -> list[tuple[str, tuple[str, ...]]]:
        if isinstance(record, ECGRecord):
            vocabulary, codes = "ptbxl_scp" if "scp_codes" in record.meta else "snomed", record.labels
        elif (ecg_id := self.ptbxl_id(str(record))) is not None:
            vocabulary, codes = "ptbxl_scp", tuple(self.ptbxl.scp_codes(ecg_id))
        else:
            comments = read_wfdb_header(self._paths[str(record)]).comments or ()
            vocabulary, codes = "snomed", _dx_codes(header_info(comments).get("Dx", ""))
        return [(vocabulary, tuple(codes))] if codes else []

    def text(self, record: ECGRecord) -> str | None:
        """PTB-XL's text for ``HR`` records given ``ptbxl_root``, else the SNOMED descriptions of the ``#Dx`` codes."""
        if "scp_codes" in record.meta and self.ptbxl is not None:
            return self.ptbxl.text(record)
        return super().text(record)
