"""tac-ecg-hf: TAC-ECG (contrastive ECG-text pre-training + Low-Rank Convolutional Adapters) for the Hugging Face
stack.

Importing the package registers the six encoders, the CETP dual encoder and the ECG feature extractor with the
transformers Auto classes. It writes nothing and logs nothing. PEFT, ``datasets``, the training code and the pipelines
are loaded only when used: the LRC-Adapter is registered with PEFT and the ``ecg-classification`` /
``zero-shot-ecg-classification`` pipelines with transformers as soon as ``peft`` / ``transformers.pipelines`` are
imported (see ``_lazy.py``), whatever the import order.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

from ._lazy import when_imported
from .models import *  # noqa: F401,F403  (the Auto-class registrations)
from .models import (
    ENCODER_FAMILIES,
    ENCODER_PRESETS,
    CETPConfig,
    CETPModel,
    ECGFeatureExtractor,
    create_encoder_config,
)
from .tasks import STANDARD_LEADS, TASKS, TaskSpec, get_task

#: names exported lazily: ``from tac_ecg_hf import LRCConfig`` imports PEFT then, not before
_LAZY = {
    "LRCConfig": "tac_ecg_hf.adapters.lrc",
    "LRCModel": "tac_ecg_hf.adapters.lrc",
    "AdapterMismatchError": "tac_ecg_hf.adapters.lrc",
    "ECGTaskClassifier": "tac_ecg_hf.inference",
    "Prediction": "tac_ecg_hf.inference",
    "ECGClassificationPipeline": "tac_ecg_hf.pipelines",
    "ZeroShotECGClassificationPipeline": "tac_ecg_hf.pipelines",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# the modules register themselves at their end; importing a half-initialised one here is harmless
when_imported("peft", lambda _: importlib.import_module("tac_ecg_hf.adapters.lrc"))
when_imported("transformers.pipelines", lambda _: importlib.import_module("tac_ecg_hf.pipelines"))
