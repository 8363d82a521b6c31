"""Tiny models shared by tests/test_reliability.py and tests/test_cli.py (and their subprocesses).

* :func:`build_tiny_repo` writes a model repository in the layout ``ECGTaskClassifier`` loads: a tiny XResNet1d
  encoder (``config.json`` + ``model.safetensors``) and one LRC-Adapter per task in ``adapters/<task>/``.
* :func:`make_resume_trainer` builds a small, deterministic ``transformers.Trainer`` on a PEFT LRC-Adapter model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

XRES_TINY = dict(layers=[1, 1], block_widths=[8, 8], stem_widths=[8, 8, 8], expansion=2)


def tiny_classifier(seed: int = 0, num_labels: int = 4, **overrides):
    """A tiny XResNet1d classifier with non-trivial BatchNorm statistics (as a pre-trained encoder has)."""
    from tac_ecg_hf import create_encoder_config
    from tac_ecg_hf.models.encoders import XResNet1dForSequenceClassification

    torch.manual_seed(seed)
    config = create_encoder_config("xresnet1d", **{**XRES_TINY, **overrides}, num_labels=num_labels)
    model = XResNet1dForSequenceClassification(config)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=g) - 0.5)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
    return model.eval()


def randomise_adapters(model: nn.Module, std: float = 0.3, seed: int = 5) -> None:
    """Non-zero adapter and head weights (a 'trained' adapter), so that predictions depend on them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lrc_" in name:
                param.copy_(torch.randn(param.shape, generator=g) * std)


def build_tiny_repo(root: str | Path, tasks=("cinc2017", "cpsc2018"), seed: int = 0) -> Path:
    """A model repository: the bare encoder at ``root`` and ``adapters/<task>/`` for each task."""
    from peft import get_peft_model

    from tac_ecg_hf import LRCConfig, get_task

    root = Path(root)
    encoder = tiny_classifier(seed).encoder
    encoder.save_pretrained(root)
    for i, task in enumerate(tasks):
        spec = get_task(task)
        model = tiny_classifier(seed, num_labels=spec.num_labels)
        model.encoder.load_state_dict(encoder.state_dict())
        peft_model = get_peft_model(model, LRCConfig.for_task(task, r=2), adapter_name=task)
        randomise_adapters(peft_model, seed=seed + i)
        peft_model.save_pretrained(root / "adapters")  # -> adapters/<task>/
    return root


# ----------------------------------------------------------------------------------------------------------------
# Trainer resume


def resume_dataset(n: int = 24, length: int = 128, seed: int = 0):
    import datasets

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12, length)).astype(np.float32)
    y = rng.integers(0, 4, size=n)
    return datasets.Dataset.from_dict({"input_values": x, "labels": y}).with_format("numpy")


def make_resume_trainer(output_dir: str | Path, max_steps: int = 8, save_steps: int = 3, callbacks=()):
    """A Trainer fine-tuning a (serial) LRC-Adapter on a tiny frozen encoder; everything is seeded."""
    from peft import get_peft_model
    from transformers import Trainer, set_seed

    from tac_ecg_hf import LRCConfig
    from tac_ecg_hf.training import ECGClassificationCollator, training_arguments

    set_seed(0)
    base = tiny_classifier(seed=0, num_labels=4)
    model = get_peft_model(base, LRCConfig.for_task("cinc2017", r=2, dropout=0.1), adapter_name="cinc2017")
    args = training_arguments(
        output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=4,
        learning_rate=5e-2,
        lr_scheduler_type="linear",
        eval_strategy="no",
        save_strategy="steps",
        save_steps=save_steps,
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        data_seed=0,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=resume_dataset(),
        data_collator=ECGClassificationCollator("cinc2017"),
        callbacks=list(callbacks),
    )


def adapter_state(trainer) -> dict:
    """The trainable (adapter + task head) weights of a trained PEFT model, detached copies."""
    return {k: v.detach().clone() for k, v in trainer.model.named_parameters() if v.requires_grad}


def losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
