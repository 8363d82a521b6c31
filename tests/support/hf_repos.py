"""Tiny random model repositories in the published layout, for the pipeline, inference, bulk and Hub tests.

* :func:`save_task_repo` -- a tiny encoder and its feature extractor at the root, one LRC-Adapter per task in
  ``<task>/`` (what ``PeftModel.save_pretrained`` writes for adapters named by their task), with the task's own
  ``preprocessor_config.json`` where it reads other leads (cinc2017: lead I);
* :func:`save_cetp_repo` -- a tiny encoder at the root and a CETP dual encoder on it with the offline
  all-MiniLM-L6-v2 text tower (referenced, not copied) in ``cetp/``, as ``examples/pretrain_cetp.py`` writes it;
* :func:`strict_json` -- ``json.loads`` that refuses ``NaN``/``Infinity`` (strict JSON parsers do).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .repos import TINY_RESNET, tiny_classifier, with_task_adapters

CETP_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def save_task_repo(folder: Path, tasks=("cpsc2018", "cinc2017"), seed: int = 0):
    """Write a task-adapter repo to ``folder``; returns the PEFT model (adapters named by task, eval mode)."""
    from tac_ecg_hf.data.feature_extraction_ecg import ECGFeatureExtractor
    from tac_ecg_hf.training import task_feature_extractor

    folder = Path(folder)
    base = tiny_classifier(seed=seed)
    base.save_pretrained(folder)
    fe = ECGFeatureExtractor()
    fe.save_pretrained(folder)
    model = with_task_adapters(base, tasks, seed=seed)
    model.save_pretrained(folder)
    for task in tasks:
        own = task_feature_extractor(task, fe)
        if own.settings() != fe.settings():
            own.save_pretrained(folder / task)
    return model


def tiny_encoder(seed: int = 0):
    from tac_ecg_hf import create_encoder_config
    from tac_ecg_hf.models.encoders import ResNet1dModel

    torch.manual_seed(seed)
    return ResNet1dModel(create_encoder_config("resnet1d", **TINY_RESNET)).eval()


def save_cetp_repo(folder: Path, seed: int = 0):
    """Write a zero-shot repo to ``folder``: encoder + feature extractor at the root, CETP in ``cetp/``. Returns the
    CETP model (eval mode)."""
    from tac_ecg_hf import CETPModel
    from tac_ecg_hf.data.feature_extraction_ecg import ECGFeatureExtractor

    folder = Path(folder)
    encoder = tiny_encoder(seed)
    torch.manual_seed(seed)
    cetp = CETPModel.from_ecg_text_pretrained(encoder, CETP_TEXT_MODEL, projection_dim=16).eval()
    encoder.save_pretrained(folder)
    ECGFeatureExtractor().save_pretrained(folder)
    cetp.save_pretrained(folder / "cetp")
    return cetp


def _refuse_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def strict_json(text: str):
    """Parse ``text`` as strict JSON: ``NaN``, ``Infinity`` and ``-Infinity`` raise ``ValueError``."""
    return json.loads(text, parse_constant=_refuse_constant)
