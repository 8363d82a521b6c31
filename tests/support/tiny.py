"""Tiny models for the tests: one definition of each, shared by every test file (through the fixtures of
``tests/conftest.py``) and by the scripts tests run in subprocesses (``tests/`` is on their ``PYTHONPATH``).

* :data:`TINY_ENCODERS`: a config of each encoder family that builds in milliseconds;
* :func:`tiny_classifier`: a ``*ForSequenceClassification`` with non-trivial BatchNorm statistics, as a pre-trained
  encoder has, so that a reload or an adapter switch has something to get wrong;
* :func:`build_tiny_repo`: a model repository in the published layout (encoder + ``preprocessor_config.json`` at the
  root, each task adapter in ``<task>/`` as ``PeftModel.save_pretrained`` writes named adapters);
* :func:`tiny_cetp`: a CETP dual encoder with a tiny random BERT text tower.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

TINY_ENCODERS = {
    "xresnet1d": dict(layers=[1, 1], block_widths=[8, 8], stem_widths=[8, 8, 8], expansion=2),
    "resnet1d": dict(layers=[1, 1], base_width=8),
    "inception1d": dict(depth=3, num_filters=4, bottleneck_size=4, kernel_sizes=[9, 5, 3], residual_every=3),
    "fcn1d": dict(widths=[8, 16, 8], kernel_sizes=[7, 5, 3]),
    "lstm1d": dict(hidden_size=8, num_layers=1),
    "ecg_transformer": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
}
FAMILIES = sorted(TINY_ENCODERS)
#: a BERT text tower of a few thousand parameters (vocabulary of 100 ids)
TINY_TEXT = dict(
    hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=100,
    max_position_embeddings=64,
)


def tiny_config(family: str = "xresnet1d", **overrides):
    from tac_ecg_hf import create_encoder_config

    return create_encoder_config(family, **{**TINY_ENCODERS[family], **overrides})


def randomise_batchnorm(model: nn.Module, seed: int = 100) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every BatchNorm (a fresh one is the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=g) - 0.5)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) + 0.5)
                module.bias.copy_((torch.rand(module.bias.shape, generator=g) - 0.5) * 0.2)
    return model


def tiny_encoder(family: str = "xresnet1d", seed: int = 0, **overrides):
    """The bare encoder (``*Model``) of a family, randomised BatchNorm, eval mode."""
    from tac_ecg_hf import ENCODER_FAMILIES

    torch.manual_seed(seed)
    model = ENCODER_FAMILIES[family][1](tiny_config(family, **overrides))
    return randomise_batchnorm(model, seed + 100).eval()


def tiny_classifier(family: str = "xresnet1d", seed: int = 0, num_labels: int = 4, **overrides):
    """A ``*ForSequenceClassification`` of a family with randomised BatchNorm, eval mode."""
    from tac_ecg_hf import ENCODER_FAMILIES

    torch.manual_seed(seed)
    model = ENCODER_FAMILIES[family][2](tiny_config(family, num_labels=num_labels, **overrides))
    return randomise_batchnorm(model, seed + 100).eval()


def randomise_adapters(model: nn.Module, std: float = 0.3, seed: int = 5) -> nn.Module:
    """Non-zero adapter and head weights (a trained adapter), so that predictions depend on them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lrc_" in name:
                param.copy_(torch.randn(param.shape, generator=g) * std)
    return model


def tiny_peft_model(
    task: str = "cinc2017", family: str = "xresnet1d", seed: int = 0, r: int = 2, encoder: nn.Module | None = None,
    **config_kwargs,
):
    """A tiny classifier with one randomised LRC-Adapter for ``task`` (named by the task), on the weights of
    ``encoder`` when given (they are in place before the adapter is created, so its fingerprint names them)."""
    from peft import get_peft_model

    from tac_ecg_hf import LRCConfig, get_task

    base = tiny_classifier(family, seed, num_labels=get_task(task).num_labels)
    if encoder is not None:
        base.encoder.load_state_dict(encoder.state_dict())
    model = get_peft_model(base, LRCConfig.for_task(task, r=r, **config_kwargs), adapter_name=task)
    return randomise_adapters(model, seed=seed + 5)


def build_tiny_repo(
    root: str | Path, tasks=("cinc2017", "cpsc2018"), family: str = "xresnet1d", seed: int = 0
) -> Path:
    """A model repository laid out as the bundled ones and ``examples/finetune.py``'s run folders:

    * the bare encoder (``config.json`` + ``model.safetensors``) and the model's ``preprocessor_config.json``
      (12 leads, 100 Hz, 10 s windows, 0.5-40 Hz) at ``root``;
    * each task's LRC-Adapter in ``root/<task>/`` (``peft_model.save_pretrained(root)`` of an adapter named by its
      task), with its own ``preprocessor_config.json`` where the task reads other leads (cinc2017: lead I).
    """
    from tac_ecg_hf.data import ECGFeatureExtractor
    from tac_ecg_hf.training import task_feature_extractor

    root = Path(root)
    encoder = tiny_encoder(family, seed)
    encoder.save_pretrained(root)
    root_fe = ECGFeatureExtractor()
    root_fe.save_pretrained(root)
    for i, task in enumerate(tasks):
        model = randomise_adapters(tiny_peft_model(task, family, seed, encoder=encoder), seed=seed + i)
        model.save_pretrained(root)  # -> root/<task>/adapter_config.json + adapter_model.safetensors
        task_fe = task_feature_extractor(task, root_fe)
        if task_fe.settings() != root_fe.settings():
            task_fe.save_pretrained(root / task)
    return root


def tiny_cetp(seed: int = 0, **config_kwargs):
    """A CETP dual encoder: tiny XResNet1d + tiny random BERT, projection 16, eval mode."""
    from transformers import BertConfig

    from tac_ecg_hf import CETPConfig, CETPModel

    torch.manual_seed(seed)
    config = CETPConfig(
        ecg_config=tiny_config("xresnet1d").to_dict(), text_config=BertConfig(**TINY_TEXT).to_dict(),
        projection_dim=16, **config_kwargs,
    )
    return CETPModel(config).eval()
