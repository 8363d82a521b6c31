"""ECG data layer: records, file readers (``io``), database readers (``databases``), one label space (``labels``),
preprocessing, `datasets` builders and CETP pairs.

Imports are lazy: ``import tac_ecg_hf.data`` loads nothing heavy; ``datasets`` is imported only when a
builder is used, wfdb/scipy/pandas only when a reader or the resampler needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # errors
    "ECGInputError": "errors",
    "ECGFileError": "errors",
    "ECGFileNotFoundError": "errors",
    "ECGQualityWarning": "errors",
    "ECGResamplingWarning": "errors",
    # record
    "ECGRecord": "record",
    "encode_labels": "record",
    # preprocessing
    "canonical_lead_name": "preprocessing",
    "reorder_leads": "preprocessing",
    "resample": "preprocessing",
    "check_signal": "preprocessing",
    "SignalQuality": "preprocessing",
    "normalize_per_lead": "preprocessing",
    "crop_or_pad": "preprocessing",
    "ECGPreprocessor": "preprocessing",
    # file formats
    "MAX_SIGNAL_VALUES": "io",
    "read_record": "io",
    "read_wfdb": "io",
    "read_wfdb_header": "io",
    "header_info": "io",
    # database readers
    "ECGDatabase": "databases",
    "DATABASES": "databases",
    "get_database": "databases",
    "SPLITS": "databases",
    "assign_split": "databases",
    "PTBXL": "databases",
    "PTBXL_SPLIT_FOLDS": "databases",
    "ptbxl_split": "databases",
    "CPSC2018": "databases",
    "CinC2017": "databases",
    "Chapman": "databases",
    "LUDB": "databases",
    "PhysioNet2020": "databases",
    "MIMICIVECG": "databases",
    # one label space across sources
    "VOCABULARIES": "labels",
    "map_labels": "labels",
    "label_table": "labels",
    "describe_codes": "labels",
    # CETP pairs
    "scp_codes_to_text": "cetp_pairs",
    "record_text": "cetp_pairs",
    "iter_cetp_pairs": "cetp_pairs",
    # builders (import datasets)
    "PTBXLBuilder": "builders",
    "PTBXLCETPBuilder": "builders",
    "CPSC2018Builder": "builders",
    "CinC2017Builder": "builders",
    "ChapmanBuilder": "builders",
    "ECGBuilderConfig": "builders",
    "get_builder": "builders",
    "load_ecg_dataset": "builders",
    "load_cetp_pairs": "builders",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for static analysers only
    from .builders import (
        ChapmanBuilder, CinC2017Builder, CPSC2018Builder, ECGBuilderConfig, PTBXLBuilder, PTBXLCETPBuilder,
        get_builder, load_cetp_pairs, load_ecg_dataset,
    )
    from .cetp_pairs import iter_cetp_pairs, record_text, scp_codes_to_text
    from .databases import (
        CPSC2018, DATABASES, LUDB, MIMICIVECG, PTBXL, PTBXL_SPLIT_FOLDS, SPLITS, Chapman, CinC2017, ECGDatabase,
        PhysioNet2020, assign_split, get_database, ptbxl_split,
    )
    from .errors import ECGFileError, ECGFileNotFoundError, ECGInputError, ECGQualityWarning, ECGResamplingWarning
    from .io import MAX_SIGNAL_VALUES, header_info, read_record, read_wfdb, read_wfdb_header
    from .labels import VOCABULARIES, describe_codes, label_table, map_labels
    from .preprocessing import (
        ECGPreprocessor, SignalQuality, canonical_lead_name, check_signal, crop_or_pad, normalize_per_lead,
        reorder_leads, resample,
    )
    from .record import ECGRecord, encode_labels
