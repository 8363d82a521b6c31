"""Configuration of the Low-Rank Convolutional Adapter (LRC-Adapter, TAC-ECG phase 2)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional, Union

from peft.config import PeftConfig


class LRCPeftType(str, enum.Enum):
    """PEFT's ``PeftType`` enum is closed; the LRC-Adapter brings its own member (a plain string on disk)."""

    LRC_ADAPTER = "LRC_ADAPTER"


VARIANTS = ("serial", "parallel")
PROBLEM_TYPES = ("multi_label_classification", "single_label_classification")


@dataclass
class LRCConfig(PeftConfig):
    """
    Configuration of an LRC-Adapter: one per downstream task on a shared frozen ECG encoder.

    Args:
        r (`int`): rank of the low-rank bottleneck.
        alpha (`float`, *optional*): the adapter output is scaled by ``alpha / r`` (default ``alpha = r``: scale 1).
        variant (`str`):
            ``"serial"`` (TAC-ECG): after each targeted BatchNorm, ``y + up(ReLU(down(y)))`` with 1x1 convs to rank ``r``
            and ``up`` zero-initialised, so training starts from the pre-trained function.
            ``"parallel"``: a mergeable low-rank conv beside each targeted ``Conv1d``,
            ``conv(x) + B(A(x))`` with ``A`` a rank-``r`` conv with the base kernel, stride, padding and dilation and ``B``
            a zero-initialised 1x1 conv; ``merge_and_unload()`` folds it into the base kernel.
        dropout (`float`): dropout on the adapter input.
        target_modules (`list[str]` or `str`, *optional*):
            module names (or one regex) to adapt. Default: the encoder's declared serial insertion points
            (BatchNorms after its kernel-3 convs) or, for ``parallel``, every ``Conv1d`` whose kernel is in ``kernel_sizes``.
        kernel_sizes (`list[int]`, *optional*): for the default ``parallel`` targets, the conv kernel sizes to adapt
            (default: every kernel larger than 1).
        head_module (`str`): the classifier ``nn.Linear`` replaced by a per-task head.
        task_name (`str`): e.g. ``"ptbxl-super"``; loading by task name uses it.
        labels (`list[str]`): class names of the task (their count sizes the head).
        problem_type (`str`): ``"multi_label_classification"`` (BCE) or ``"single_label_classification"`` (CE).
        freeze_base_batchnorm (`bool`): keep the frozen encoder's BatchNorm layers in eval mode while adapters train,
            so their running statistics never drift (needed for adapter switching and exact reloads).
        encoder_signature (`dict`): filled in when the adapter is created; loading it on an encoder with another
            architecture, width or lead count is refused.
        preprocessing (`dict`): the input format (leads, sampling rate, samples) the adapter was trained with.
    """

    r: int = field(default=8, metadata={"help": "Rank of the low-rank bottleneck."})
    alpha: Optional[float] = field(default=None, metadata={"help": "Scale is alpha / r; default alpha = r."})
    variant: str = field(default="serial", metadata={"help": "'serial' (TAC-ECG) or 'parallel' (mergeable)."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the adapter input."})
    target_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "Modules to adapt."})
    exclude_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "Modules not to adapt."})
    kernel_sizes: Optional[list[int]] = field(default=None, metadata={"help": "Kernel sizes for parallel targets."})
    head_module: str = field(default="head.classifier", metadata={"help": "Classifier replaced per task."})
    task_name: Optional[str] = field(default=None, metadata={"help": "Task this adapter solves."})
    labels: Optional[list[str]] = field(default=None, metadata={"help": "Class names of the task."})
    problem_type: str = field(default="multi_label_classification", metadata={"help": "BCE or CE head."})
    freeze_base_batchnorm: bool = field(default=True, metadata={"help": "Keep base BatchNorm in eval mode."})
    init_weights: bool = field(default=True, metadata={"help": "Zero-init the up/B projections."})
    encoder_signature: Optional[dict] = field(default=None, metadata={"help": "Encoder this adapter was made for."})
    preprocessing: Optional[dict] = field(default=None, metadata={"help": "Input format used in training."})
    metrics: Optional[dict] = field(default=None, metadata={"help": "Held-out metrics, for the model card."})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = LRCPeftType.LRC_ADAPTER
        if self.variant not in VARIANTS:
            raise ValueError(f"LRCConfig.variant must be one of {VARIANTS}, got {self.variant!r}.")
        if not isinstance(self.r, int) or self.r <= 0:
            raise ValueError(f"LRCConfig.r must be a positive integer, got {self.r!r}.")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"LRCConfig.problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}.")
        if self.labels is not None:
            self.labels = list(self.labels)
            if len(self.labels) < 1 or len(set(self.labels)) != len(self.labels):
                raise ValueError(f"LRCConfig.labels must be unique class names, got {self.labels!r}.")
        if self.kernel_sizes is not None:
            self.kernel_sizes = [int(k) for k in self.kernel_sizes]
        if isinstance(self.target_modules, (set, tuple)):
            self.target_modules = sorted(self.target_modules)

    @property
    def scaling(self) -> float:
        return (self.alpha if self.alpha is not None else self.r) / self.r

    @classmethod
    def for_task(cls, task_name: str, **kwargs) -> "LRCConfig":
        """An adapter config for one of the built-in tasks (labels and problem type filled in)."""
        from ...tasks import get_task

        task = get_task(task_name)
        return cls(task_name=task.name, labels=list(task.labels), problem_type=task.problem_type, **kwargs)
