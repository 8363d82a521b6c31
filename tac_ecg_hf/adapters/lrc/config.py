"""Configuration of the Low-Rank Convolutional Adapter (LRC-Adapter, TAC-ECG phase 2)."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Optional, Union

from peft.config import PeftConfig


class LRCPeftType(str, enum.Enum):
    """PEFT's ``PeftType`` enum is closed; the LRC-Adapter brings its own member (a plain string on disk)."""

    LRC_ADAPTER = "LRC_ADAPTER"


VARIANTS = ("serial", "parallel")
PROBLEM_TYPES = ("multi_label_classification", "single_label_classification")
MAX_RANK = 1_024
MAX_LABELS = 10_000
MAX_KERNEL_SIZE = 255


@dataclass
class LRCConfig(PeftConfig):
    """
    Configuration of an LRC-Adapter: one per downstream task on a shared frozen ECG encoder.

    Args:
        r (`int`): rank of the low-rank bottleneck.
        alpha (`float`, *optional*): the adapter output is scaled by ``alpha / r`` (default ``alpha = r``: scale 1).
        variant (`str`):
            ``"serial"`` (TAC-ECG): after each targeted normalisation or recurrent layer, ``y + up(ReLU(down(y)))``,
            a per-time-step map to rank ``r`` (1x1 convs after a BatchNorm1d, linear layers on the channel-last output
            of a LayerNorm or an LSTM layer) with ``up`` zero-initialised, so training starts from the pre-trained
            function.
            ``"parallel"``: a mergeable low-rank conv beside each targeted ``Conv1d``,
            ``conv(x) + B(A(x))`` with ``A`` a rank-``r`` conv with the base kernel, stride, padding and dilation and
            ``B`` a zero-initialised 1x1 conv; ``merge_and_unload()`` folds it into the base kernel.
        dropout (`float`): dropout on the adapter input.
        target_modules (`list[str]` or `str`, *optional*):
            module names (or one regex, matched in full) to adapt. Default: the insertion points of the encoder family
            for the variant, from ``TRANSFORMERS_MODELS_TO_LRC_TARGET_MODULES_MAPPING``.
        kernel_sizes (`list[int]`, *optional*): for ``parallel``, the conv kernel sizes to adapt among the targets
            (default: every kernel larger than 1).
        head_module (`str`, *optional*): the classifier ``nn.Linear`` replaced by a per-task head; ``None`` for a
            feature adapter without a head (the default on a bare encoder, which has no classifier).
        task_name (`str`): e.g. ``"ptbxl-super"``; loading by task name uses it.
        labels (`list[str]`): class names of the task (their count sizes the head).
        problem_type (`str`): ``"multi_label_classification"`` (BCE) or ``"single_label_classification"`` (CE).
        freeze_base_batchnorm (`bool`): keep the frozen encoder's BatchNorm layers in eval mode while adapters train,
            so their running statistics never drift (needed for adapter switching and exact reloads).
        encoder_signature (`dict`): filled in when the adapter is created; loading it on an encoder with another
            architecture, width or lead count is refused.
        encoder_fingerprint (`str`): filled in when the adapter is created: a hash of the frozen encoder's weights
            (see ``tac_ecg_hf.adapters.fingerprint``); loading the adapter on other weights is refused. Adapters saved
            without one fall back to ``encoder_signature`` and the shapes of their tensors.
        thresholds (`list[float]`): per-class decision thresholds of a multi-label task, calibrated on held-out
            (validation) records after training; predict, the CLI and the pipeline use them. The input format lives in
            the feature extractor saved with the model (``preprocessor_config.json``), not here.
    """

    r: int = field(default=8, metadata={"help": "Rank of the low-rank bottleneck."})
    alpha: Optional[float] = field(default=None, metadata={"help": "Scale is alpha / r; default alpha = r."})
    variant: str = field(default="serial", metadata={"help": "'serial' (TAC-ECG) or 'parallel' (mergeable)."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the adapter input."})
    target_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "Modules to adapt."})
    exclude_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "Modules not to adapt."})
    kernel_sizes: Optional[list[int]] = field(default=None, metadata={"help": "Kernel sizes for parallel targets."})
    head_module: Optional[str] = field(default="head.classifier", metadata={"help": "Classifier replaced per task."})
    task_name: Optional[str] = field(default=None, metadata={"help": "Task this adapter solves."})
    labels: Optional[list[str]] = field(default=None, metadata={"help": "Class names of the task."})
    problem_type: str = field(default="multi_label_classification", metadata={"help": "BCE or CE head."})
    freeze_base_batchnorm: bool = field(default=True, metadata={"help": "Keep base BatchNorm in eval mode."})
    init_weights: bool = field(default=True, metadata={"help": "Zero-init the up/B projections."})
    encoder_signature: Optional[dict] = field(default=None, metadata={"help": "Encoder this adapter was made for."})
    encoder_fingerprint: Optional[str] = field(default=None, metadata={"help": "Hash of that encoder's weights."})
    thresholds: Optional[list[float]] = field(default=None, metadata={"help": "Calibrated per-class thresholds."})
    metrics: Optional[dict] = field(default=None, metadata={"help": "Held-out metrics, for the model card."})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = LRCPeftType.LRC_ADAPTER
        if self.variant not in VARIANTS:
            raise ValueError(f"LRCConfig.variant must be one of {VARIANTS}, got {self.variant!r}.")
        if isinstance(self.r, bool) or not isinstance(self.r, int) or not 1 <= self.r <= MAX_RANK:
            raise ValueError(f"LRCConfig.r must be an integer in [1, {MAX_RANK}], got {self.r!r}.")
        if self.alpha is not None and (
            isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < math.inf
        ):
            raise ValueError(f"LRCConfig.alpha must be a positive number (or None for alpha = r), got {self.alpha!r}.")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"LRCConfig.dropout must be a number in [0, 1), got {self.dropout!r}.")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"LRCConfig.problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}.")
        if self.labels is not None:
            if not isinstance(self.labels, (list, tuple)) or not all(isinstance(label, str) for label in self.labels):
                raise ValueError(f"LRCConfig.labels must be a list of class names, got {_short(self.labels)}.")
            self.labels = list(self.labels)
            if not 1 <= len(self.labels) <= MAX_LABELS:
                raise ValueError(
                    f"LRCConfig.labels must hold 1 to {MAX_LABELS:,} class names, got {len(self.labels):,}."
                )
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"LRCConfig.labels must be unique class names, got {_short(self.labels)}.")
        if self.kernel_sizes is not None:
            if not isinstance(self.kernel_sizes, (list, tuple)) or not all(
                isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= MAX_KERNEL_SIZE for k in self.kernel_sizes
            ):
                raise ValueError(
                    f"LRCConfig.kernel_sizes must be a list of integers in [1, {MAX_KERNEL_SIZE}], got "
                    f"{_short(self.kernel_sizes)}."
                )
            self.kernel_sizes = list(self.kernel_sizes)
        if self.head_module is not None and (not isinstance(self.head_module, str) or not self.head_module):
            raise ValueError(f"LRCConfig.head_module must be a module name or None, got {self.head_module!r}.")
        if isinstance(self.target_modules, (set, tuple)):
            self.target_modules = sorted(self.target_modules)
        for name in ("target_modules", "exclude_modules"):
            value = getattr(self, name)
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
        if self.task_name is not None and not isinstance(self.task_name, str):
            raise ValueError(f"LRCConfig.task_name must be a string, got {_short(self.task_name)}.")
        if self.encoder_fingerprint is not None and not isinstance(self.encoder_fingerprint, str):
            raise ValueError(
                f"LRCConfig.encoder_fingerprint must be a string, got {_short(self.encoder_fingerprint)}."
            )
        if self.encoder_signature is not None and not isinstance(self.encoder_signature, dict):
            raise ValueError(f"LRCConfig.encoder_signature must be an object, got {_short(self.encoder_signature)}.")
        for name in ("freeze_base_batchnorm", "init_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"LRCConfig.{name} must be true or false, got {_short(getattr(self, name))}.")
        if self.metrics is not None and not isinstance(self.metrics, dict):
            raise ValueError(f"LRCConfig.metrics must be an object, got {_short(self.metrics)}.")
        if self.thresholds is not None:
            values = self.thresholds if isinstance(self.thresholds, (list, tuple)) else None
            if values is None or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in values
            ) or (self.labels is not None and len(values) != len(self.labels)):
                raise ValueError(
                    f"LRCConfig.thresholds must be one probability in [0, 1] per label, got {_short(self.thresholds)}."
                )
            self.thresholds = [float(t) for t in values]

    @property
    def scaling(self) -> float:
        return (self.alpha if self.alpha is not None else self.r) / self.r

    @classmethod
    def for_task(cls, task_name: str, **kwargs) -> LRCConfig:
        """An adapter config for one of the built-in tasks (labels and problem type filled in)."""
        from ...tasks import get_task

        task = get_task(task_name)
        return cls(task_name=task.name, labels=list(task.labels), problem_type=task.problem_type, **kwargs)


def _is_names(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
