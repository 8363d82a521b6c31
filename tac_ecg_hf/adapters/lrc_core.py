"""The LRC-Adapter without PEFT: the checks of its settings and the forward of its layers, in plain Python and torch.

``LRCConfig`` (a PEFT config) and the LRC layers (PEFT tuner layers) use these, and so does ``tac_ecg_hf.lite``, the
command line's single prediction, which imports neither PEFT nor transformers: both accept the same settings and
compute the same outputs.
"""

from __future__ import annotations

import math
import re

import torch

from ..models.encoders.layers import is_pointwise_conv1d  # torch-only, as this module

VARIANTS = ("serial", "parallel")
PROBLEM_TYPES = ("multi_label_classification", "single_label_classification")
MAX_RANK = 1_024
MAX_LABELS = 10_000
MAX_KERNEL_SIZE = 255


def check_lrc_fields(cfg) -> None:
    """Check (and normalise: lists, float thresholds) the fields of an LRC-Adapter config, an ``LRCConfig`` or any
    object with its fields; raises ``ValueError`` naming the field."""
    if cfg.variant not in VARIANTS:
        raise ValueError(f"LRCConfig.variant must be one of {VARIANTS}, got {cfg.variant!r}.")
    if isinstance(cfg.r, bool) or not isinstance(cfg.r, int) or not 1 <= cfg.r <= MAX_RANK:
        raise ValueError(f"LRCConfig.r must be an integer in [1, {MAX_RANK}], got {cfg.r!r}.")
    if cfg.alpha is not None and (
        isinstance(cfg.alpha, bool) or not isinstance(cfg.alpha, (int, float)) or not 0 < cfg.alpha < math.inf
    ):
        raise ValueError(f"LRCConfig.alpha must be a positive number (or None for alpha = r), got {cfg.alpha!r}.")
    if isinstance(cfg.dropout, bool) or not isinstance(cfg.dropout, (int, float)) or not 0 <= cfg.dropout < 1:
        raise ValueError(f"LRCConfig.dropout must be a number in [0, 1), got {cfg.dropout!r}.")
    if cfg.problem_type not in PROBLEM_TYPES:
        raise ValueError(f"LRCConfig.problem_type must be one of {PROBLEM_TYPES}, got {cfg.problem_type!r}.")
    if cfg.labels is not None:
        if not isinstance(cfg.labels, (list, tuple)) or not all(isinstance(label, str) for label in cfg.labels):
            raise ValueError(f"LRCConfig.labels must be a list of class names, got {_short(cfg.labels)}.")
        cfg.labels = list(cfg.labels)
        if not 1 <= len(cfg.labels) <= MAX_LABELS:
            raise ValueError(
                f"LRCConfig.labels must hold 1 to {MAX_LABELS:,} class names, got {len(cfg.labels):,}."
            )
        if len(set(cfg.labels)) != len(cfg.labels):
            raise ValueError(f"LRCConfig.labels must be unique class names, got {_short(cfg.labels)}.")
    if cfg.kernel_sizes is not None:
        if not isinstance(cfg.kernel_sizes, (list, tuple)) or not all(
            isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= MAX_KERNEL_SIZE for k in cfg.kernel_sizes
        ):
            raise ValueError(
                f"LRCConfig.kernel_sizes must be a list of integers in [1, {MAX_KERNEL_SIZE}], got "
                f"{_short(cfg.kernel_sizes)}."
            )
        cfg.kernel_sizes = list(cfg.kernel_sizes)
    if cfg.head_module is not None and (not isinstance(cfg.head_module, str) or not cfg.head_module):
        raise ValueError(f"LRCConfig.head_module must be a module name or None, got {cfg.head_module!r}.")
    if isinstance(cfg.target_modules, (set, tuple)):
        cfg.target_modules = sorted(cfg.target_modules)
    for name in ("target_modules", "exclude_modules"):
        value = getattr(cfg, name)
        if value is not None and not _is_names(value):
            raise ValueError(
                f"LRCConfig.{name} must be a module name pattern or a list of names, got {_short(value)}."
            )
        if isinstance(value, str):
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(
                    f"LRCConfig.{name}={value!r} is not a valid regular expression ({err})."
                ) from None
    if cfg.task_name is not None and not isinstance(cfg.task_name, str):
        raise ValueError(f"LRCConfig.task_name must be a string, got {_short(cfg.task_name)}.")
    if cfg.encoder_fingerprint is not None and not isinstance(cfg.encoder_fingerprint, str):
        raise ValueError(
            f"LRCConfig.encoder_fingerprint must be a string, got {_short(cfg.encoder_fingerprint)}."
        )
    if cfg.encoder_signature is not None and not isinstance(cfg.encoder_signature, dict):
        raise ValueError(f"LRCConfig.encoder_signature must be an object, got {_short(cfg.encoder_signature)}.")
    for name in ("freeze_base_batchnorm", "init_weights"):
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"LRCConfig.{name} must be true or false, got {_short(getattr(cfg, name))}.")
    if cfg.metrics is not None and not isinstance(cfg.metrics, dict):
        raise ValueError(f"LRCConfig.metrics must be an object, got {_short(cfg.metrics)}.")
    if cfg.thresholds is not None:
        values = cfg.thresholds if isinstance(cfg.thresholds, (list, tuple)) else None
        if values is None or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in values
        ) or (cfg.labels is not None and len(values) != len(cfg.labels)):
            raise ValueError(
                f"LRCConfig.thresholds must be one probability in [0, 1] per label, got {_short(cfg.thresholds)}."
            )
        cfg.thresholds = [float(t) for t in values]


def lrc_scaling(cfg) -> float:
    """The factor of the adapter's output: ``alpha / r`` (``alpha`` defaults to ``r``: 1)."""
    return (cfg.alpha if cfg.alpha is not None else cfg.r) / cfg.r


def low_rank_conv(module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, with a pointwise ``nn.Conv1d`` (kernel 1, stride 1, no padding, one group) on a CPU tensor
    ``(batch, channels, time)`` run as one batched matmul ``bias + W @ x``.

    The adapters' own convs are pointwise and thin (rank 8 here), a shape oneDNN's convolution handles badly on CPU:
    one thread, a 64 -> 8 map over 63 steps took 0.57 ms forward + backward as a conv and 0.26 ms as a matmul in
    bfloat16, an 8 -> 256 map over 250 steps 13.8 ms forward as a conv and 1.05 ms as a matmul. The same values up to
    the order of the sums, the same parameters and gradients (tests/test_lrc_adapter.py); under autocast ``baddbmm``
    casts as ``conv1d`` does. Anything else (a Linear, a wider kernel, another device) is called as it is.
    """
    if type(module) is torch.nn.Conv1d and is_pointwise_conv1d(module) and x.dim() == 3 and x.device.type == "cpu":
        weight = module.weight[:, :, 0].expand(x.shape[0], -1, -1)  # a view: no copy per sample
        if module.bias is None:
            return torch.bmm(weight, x)
        return torch.baddbmm(module.bias.view(1, -1, 1), weight, x)
    return module(x)


def serial_update(y: torch.Tensor, down, up, scaling: float, dropout=None) -> torch.Tensor:
    """The serial adapter after a layer whose output is ``y``: ``y + s * up(ReLU(down(dropout(y))))``."""
    hidden = torch.relu(low_rank_conv(down, y if dropout is None else dropout(y)))
    # one fused y + s * u (``alpha``), not a scaled copy of u and then a sum
    return torch.add(y, low_rank_conv(up, hidden), alpha=scaling)


def parallel_update(out: torch.Tensor, x: torch.Tensor, down, up, scaling: float) -> torch.Tensor:
    """The parallel adapter beside a conv with input ``x`` and output ``out``: ``out + s * up(down(x))``."""
    return torch.add(out, low_rank_conv(up, low_rank_conv(down, x)), alpha=scaling)


def _is_names(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
