"""ECG data layer: records, preprocessing, safe readers, `datasets` builders and CETP pairs.

Imports are lazy: ``import tac_ecg_hf.data`` loads nothing heavy; ``datasets`` is imported only when a
builder is used, scipy/pandas only when a reader or the resampler needs them.
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
    # readers
    "WFDBHeader": "readers",
    "WFDBSignalSpec": "readers",
    "read_wfdb_header": "readers",
    "read_record": "readers",
    "assign_split": "readers",
    "PTBXL_SPLIT_FOLDS": "readers",
    "load_ptbxl_metadata": "readers",
    "ptbxl_superclass_labels": "readers",
    "ptbxl_split": "readers",
    "read_ptbxl": "readers",
    "parse_cpsc2018_labels": "readers",
    "read_cpsc2018": "readers",
    "read_cinc2017": "readers",
    "CHAPMAN_RHYTHM_GROUPS": "readers",
    "chapman_rhythm_group": "readers",
    "read_chapman": "readers",
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
    from .errors import ECGFileError, ECGFileNotFoundError, ECGInputError, ECGQualityWarning, ECGResamplingWarning
    from .preprocessing import (
        ECGPreprocessor, SignalQuality, canonical_lead_name, check_signal, crop_or_pad, normalize_per_lead,
        reorder_leads, resample,
    )
    from .readers import (
        CHAPMAN_RHYTHM_GROUPS, PTBXL_SPLIT_FOLDS, WFDBHeader, WFDBSignalSpec, assign_split, chapman_rhythm_group,
        load_ptbxl_metadata, parse_cpsc2018_labels, ptbxl_split, ptbxl_superclass_labels, read_chapman,
        read_cinc2017, read_cpsc2018, read_ptbxl, read_record, read_wfdb_header,
    )
    from .record import ECGRecord, encode_labels
