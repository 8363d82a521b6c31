"""One reader class per ECG database, on a small shared base (in the manner of torch_ecg's ``databases``).

    >>> from tac_ecg_hf.data.databases import get_database
    >>> db = get_database("cpsc2018", "/data/cpsc2018")
    >>> record = db.load("A0001")                 # ECGRecord, mV; record.labels = ("RBBB",), the source's labels
    >>> db.task_labels(record, "cpsc2018")        # ('RBBB',): the task's classes (tac_ecg_hf.data.labels)
    >>> db.split_of("A0001"), db.record_ids("test")[:3]
    >>> for record in db.records("train", on_error="skip", limit=10): ...

Every database reads its files through :func:`tac_ecg_hf.data.io.read_record`.
"""

from __future__ import annotations

import os
from typing import Any

from .base import ON_ERROR, SPLITS, ECGDatabase, assign_split, combine_labels
from .chapman import Chapman
from .cinc2017 import CinC2017
from .cpsc2018 import CPSC2018, CPSC2018_NUMERIC_LABELS
from .ludb import LUDB
from .mimic_iv_ecg import MIMICIVECG
from .physionet2020 import CHALLENGE_SOURCES, PhysioNet2020
from .ptbxl import PTBXL, PTBXL_SPLIT_FOLDS, TEXT_SOURCES, ptbxl_split, scp_codes_to_text, statement_table

__all__ = [
    "ECGDatabase",
    "DATABASES",
    "get_database",
    "SPLITS",
    "ON_ERROR",
    "assign_split",
    "combine_labels",
    "PTBXL",
    "PTBXL_SPLIT_FOLDS",
    "TEXT_SOURCES",
    "ptbxl_split",
    "scp_codes_to_text",
    "statement_table",
    "CPSC2018",
    "CPSC2018_NUMERIC_LABELS",
    "CinC2017",
    "Chapman",
    "LUDB",
    "PhysioNet2020",
    "CHALLENGE_SOURCES",
    "MIMICIVECG",
]

#: registry name -> reader class
DATABASES: dict[str, type[ECGDatabase]] = {
    cls.name: cls for cls in (PTBXL, CPSC2018, CinC2017, Chapman, LUDB, PhysioNet2020, MIMICIVECG)
}


def get_database(name: str, root: str | os.PathLike, **kwargs: Any) -> ECGDatabase:
    """The reader of database ``name`` (a key of :data:`DATABASES`) for the folder ``root``."""
    try:
        cls = DATABASES[name]
    except KeyError:
        raise KeyError(f"Unknown ECG database {name!r}. Known databases: {', '.join(DATABASES)}.") from None
    return cls(root, **kwargs)
