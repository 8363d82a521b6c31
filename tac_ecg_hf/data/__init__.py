"""ECG data layer: records, file readers (``io``), database readers (``databases``), one label space (``labels``),
the feature extractor, training augmentations and `datasets` builders.

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
    "ECGConfigError": "errors",
    # record
    "ECGRecord": "record",
    "encode_labels": "record",
    # preprocessing: the feature extractor saved with every model
    "ECGFeatureExtractor": "feature_extraction_ecg",
    "ECGPreprocessor": "preprocessing",
    "PreparedECG": "preprocessing",
    "canonical_lead_name": "preprocessing",
    "STANDARD_LEADS": "preprocessing",
    # training augmentations
    "ECGAugment": "augment",
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
    # builders (import datasets)
    "ECGBuilderConfig": "builders",
    "ECGDatasetBuilder": "builders",
    "ECGTransform": "builders",
    "TASK_SOURCES": "builders",
    "CETP_SOURCES": "builders",
    "decode_signal": "builders",
    "load_ecg_dataset": "builders",
    "load_task_dataset": "builders",
    "load_cetp_pairs": "builders",
    "scp_codes_to_text": "databases",
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
    from .augment import ECGAugment
    from .builders import (
        CETP_SOURCES,
        TASK_SOURCES,
        ECGBuilderConfig,
        ECGDatasetBuilder,
        ECGTransform,
        decode_signal,
        load_cetp_pairs,
        load_ecg_dataset,
        load_task_dataset,
    )
    from .databases import (
        CPSC2018,
        DATABASES,
        LUDB,
        MIMICIVECG,
        PTBXL,
        PTBXL_SPLIT_FOLDS,
        SPLITS,
        Chapman,
        CinC2017,
        ECGDatabase,
        PhysioNet2020,
        assign_split,
        get_database,
        ptbxl_split,
        scp_codes_to_text,
    )
    from .errors import ECGConfigError, ECGFileError, ECGFileNotFoundError, ECGInputError, ECGQualityWarning
    from .feature_extraction_ecg import STANDARD_LEADS, ECGFeatureExtractor, PreparedECG, canonical_lead_name
    from .io import MAX_SIGNAL_VALUES, header_info, read_record, read_wfdb, read_wfdb_header
    from .labels import VOCABULARIES, describe_codes, label_table, map_labels
    from .record import ECGRecord, encode_labels
