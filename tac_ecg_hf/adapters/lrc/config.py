"""Configuration of the Low-Rank Convolutional Adapter (LRC-Adapter, TAC-ECG phase 2)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional, Union

from peft.config import PeftConfig

from ..lrc_core import (  # noqa: F401  (re-exported: the names this module always had)
    MAX_KERNEL_SIZE,
    MAX_LABELS,
    MAX_RANK,
    PROBLEM_TYPES,
    VARIANTS,
    _is_names,
    _short,
    check_lrc_fields,
    lrc_scaling,
)


class LRCPeftType(str, enum.Enum):
    """PEFT's ``PeftType`` enum is closed; the LRC-Adapter brings its own member (a plain string on disk)."""

    LRC_ADAPTER = "LRC_ADAPTER"


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
        check_lrc_fields(self)

    @property
    def scaling(self) -> float:
        return lrc_scaling(self)

    @classmethod
    def for_task(cls, task_name: str, **kwargs) -> LRCConfig:
        """An adapter config for one of the built-in tasks (labels and problem type filled in)."""
        from ...tasks import get_task

        task = get_task(task_name)
        return cls(task_name=task.name, labels=list(task.labels), problem_type=task.problem_type, **kwargs)

