"""Tiny random tac-ecg-hf models and run folders in the repo layout, for the Hub tests."""

from __future__ import annotations

from pathlib import Path

import torch

from .tiny import TINY_ENCODERS

TINY_RESNET = TINY_ENCODERS["resnet1d"]


def tiny_classifier(num_labels: int = 5, seed: int = 0):
    """A random ResNet1d classifier of a few thousand parameters (12 leads, any length)."""
    from tac_ecg_hf import create_encoder_config
    from tac_ecg_hf.models.encoders import ResNet1dForSequenceClassification

    torch.manual_seed(seed)
    config = create_encoder_config("resnet1d", **TINY_RESNET, num_labels=num_labels,
                                   problem_type="multi_label_classification")
    return ResNet1dForSequenceClassification(config).eval()


def with_task_adapters(base, tasks=("ptbxl-super", "cinc2017"), metrics: dict | None = None, seed: int = 0):
    """``base`` with one LRC-Adapter per task, named by the task, with non-zero weights (so that each changes the
    output); ``metrics[task]`` goes into that adapter's config."""
    from peft import get_peft_model

    from tac_ecg_hf import LRCConfig

    metrics = metrics or {}
    model = None
    for task in tasks:
        config = LRCConfig.for_task(task, metrics=metrics.get(task))
        if model is None:
            model = get_peft_model(base, config, adapter_name=task)
        else:
            model.add_adapter(task, config)
    torch.manual_seed(seed)
    for name, param in model.named_parameters():
        if "lrc_up" in name:
            torch.nn.init.normal_(param, std=0.05)
    return model.eval()


def outputs(model, tasks, x) -> dict[str, torch.Tensor]:
    out = {}
    with torch.no_grad():
        for task in tasks:
            model.set_adapter(task)
            out[task] = model(input_values=x).logits
    return out


def save_run(folder: Path, tasks=("ptbxl-super", "cinc2017"), metrics: dict | None = None, seed: int = 0):
    """A trained-run folder in the published layout: the encoder at the root, one adapter folder per task (what
    ``PeftModel.save_pretrained`` writes for adapters named by their task). Returns the PEFT model."""
    base = tiny_classifier(seed=seed)
    base.save_pretrained(folder)
    model = with_task_adapters(base, tasks, metrics, seed=seed)
    model.save_pretrained(folder)
    return model


def state_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
