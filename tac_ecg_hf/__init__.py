"""tac-ecg-hf: TAC-ECG (contrastive ECG-text pre-training + Low-Rank Convolutional Adapters) for the Hugging Face
stack.

Importing the package writes nothing, logs nothing and loads neither transformers' modelling code nor PEFT: the
six encoders, the CETP dual encoder and the ECG feature extractor are registered with the transformers Auto classes
the moment those Auto classes are imported (``AutoConfig``, ``AutoModel``..., ``AutoFeatureExtractor``; at once
where they already are), the LRC-Adapter with PEFT when ``peft`` is imported and the ``ecg-classification`` /
``zero-shot-ecg-classification`` pipelines when ``transformers.pipelines`` is (see ``_lazy.py``), whatever the
import order. Names such as ``tac_ecg_hf.CETPModel`` or ``tac_ecg_hf.LRCConfig`` load their module on first use.

Why not register eagerly: ``transformers.modeling_utils`` alone takes about 2 s to import on this CPU (torch's
distributed tensors, dynamo, scipy.optimize for object-detection losses), more than ``import torch``; the
command line's single prediction (``tac-ecg predict RECORD``) needs none of it (``tac_ecg_hf.lite``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

from ._lazy import when_imported
from .tasks import STANDARD_LEADS, TASKS, TaskSpec, get_task

#: names exported lazily: ``from tac_ecg_hf import LRCConfig`` imports PEFT then, not before
_LAZY = {
    "LRCConfig": "tac_ecg_hf.adapters.lrc",
    "LRCModel": "tac_ecg_hf.adapters.lrc",
    "AdapterMismatchError": "tac_ecg_hf.adapters.errors",
    "ECGTaskClassifier": "tac_ecg_hf.inference",
    "Prediction": "tac_ecg_hf.inference",
    "ECGClassificationPipeline": "tac_ecg_hf.pipelines",
    "ZeroShotECGClassificationPipeline": "tac_ecg_hf.pipelines",
    "ECGFeatureExtractor": "tac_ecg_hf.data.feature_extraction_ecg",
    "ECGPreprocessor": "tac_ecg_hf.data.preprocessing",
}
#: every other public name of ``tac_ecg_hf.models`` (configs, encoders, classifiers, CETP, presets) loads it
_MODELS = "tac_ecg_hf.models"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_"):
        models = importlib.import_module(_MODELS)
        if name not in models.__all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(models, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# The callbacks import the package module that performs the registration (each is idempotent). The Auto modules are
# imported by transformers before anything can look a model type up in them; none of them imports the modelling code
# at its top, so the modules the callbacks need are complete when they run.
when_imported("transformers.models.auto.configuration_auto", lambda _: importlib.import_module(
    "tac_ecg_hf.models.configs"))
when_imported("transformers.models.auto.modeling_auto", lambda _: importlib.import_module(
    "tac_ecg_hf.models.registration"))
when_imported("transformers.models.auto.feature_extraction_auto", lambda _: importlib.import_module(
    "tac_ecg_hf.models.registration"))
when_imported("peft", lambda _: importlib.import_module("tac_ecg_hf.adapters.lrc"))
when_imported("transformers.pipelines", lambda _: importlib.import_module("tac_ecg_hf.pipelines"))
