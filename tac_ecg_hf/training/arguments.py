"""The argument dataclasses of the Trainer scripts (``HfArgumentParser`` over them and ``TrainingArguments``)."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field

import torch

from ..tasks import TASKS, get_task

METHODS = ("lrc", "lrc-parallel", "lora", "linear", "full", "scratch")
ADAPTER_METHODS = ("lrc", "lrc-parallel", "lora")
# ----------------------------------------------------------------------------------------------------------------
# arguments


@dataclass
class ModelArguments:
    """Which model to adapt, and how."""

    base_model: str | None = field(
        default=None,
        metadata={"help": "Pre-trained encoder: a run folder, a bundled id or a Hub id (not for --method scratch)."},
    )
    method: str = field(default="lrc", metadata={"help": f"One of {', '.join(METHODS)}."})
    encoder: str = field(default="xresnet1d101", metadata={"help": "Encoder preset for --method scratch."})
    encoder_overrides: str = field(default="{}", metadata={"help": "JSON dict of encoder config overrides (scratch)."})
    rank: int = field(default=8, metadata={"help": "Adapter rank (LRC and LoRA)."})

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}.")
        if self.method != "scratch" and not self.base_model:
            raise ValueError(f"--method {self.method} needs --base_model (a pre-trained encoder).")


@dataclass
class DataArguments:
    """Which data to train on."""

    task: str = field(default="ptbxl-super", metadata={"help": f"One of {', '.join(TASKS)}."})
    data_dir: str = field(
        default_factory=lambda: os.environ.get("TAC_ECG_DATA", "../shared/data"),
        metadata={"help": "Data root laid out like ../shared/data (default: $TAC_ECG_DATA, else ../shared/data)."},
    )
    sources: str | None = field(
        default=None, metadata={"help": "Comma-separated databases (default: every one with the task's labels)."}
    )
    max_records: int | None = field(
        default=None, metadata={"help": "At most this many records per database and split (quick runs)."}
    )
    label_fraction: float = field(
        default=1.0, metadata={"help": "Train on this stratified fraction of the training labels."}
    )
    cv_folds: int | None = field(
        default=None,
        metadata={"help": "k of a k-fold cross-validation (test fold --cv_fold, validation the one before)."},
    )
    cv_fold: int = field(
        default=0, metadata={"help": "Test fold of --cv_folds (0-based; PTB-XL uses strat_fold: fold k+1)."}
    )
    augment: bool = field(
        default=False, metadata={"help": "Random crops (2.5-10 s), lead masking/subsets, scaling, noise."}
    )
    bootstrap_resamples: int = field(
        default=1000, metadata={"help": "Bootstrap resamples of the held-out 95% CIs (0: no CIs, for quick runs)."}
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream records instead of caching them (CETP on corpora that do not fit; --max_steps)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "datasets cache directory."})

    def __post_init__(self):
        get_task(self.task)
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"--label_fraction must be in (0, 1], got {self.label_fraction}.")
        if self.cv_folds is not None and not (3 <= self.cv_folds <= 20 and 0 <= self.cv_fold < self.cv_folds):
            raise ValueError(
                f"--cv_folds must be 3-20 and --cv_fold in [0, cv_folds), got {self.cv_folds}/{self.cv_fold}."
            )
        if self.bootstrap_resamples < 0:
            raise ValueError(f"--bootstrap_resamples must be >= 0, got {self.bootstrap_resamples}.")

    @property
    def source_list(self) -> list[str] | None:
        return [s.strip() for s in self.sources.split(",") if s.strip()] if self.sources else None


@dataclass
class CETPArguments:
    """The CETP dual encoder."""

    encoder: str = field(
        default="xresnet1d101", metadata={"help": "Encoder preset (xresnet1d101, resnet1d18-small, ...)."}
    )
    encoder_overrides: str = field(default="{}", metadata={"help": "JSON dict of encoder config overrides."})
    text_model: str | None = field(
        default=None, metadata={"help": "Text tower id or path (default: all-MiniLM-L6-v2, offline)."}
    )
    text_source: str = field(
        default="both", metadata={"help": "PTB-XL text: report, scp (English statements) or both."}
    )
    text_trainable_layers: int = field(
        default=0, metadata={"help": "Top text layers to train (-1: all; 0: frozen, cached)."}
    )
    projection_dim: int = field(default=256, metadata={"help": "Width of the shared embedding space."})


def default_learning_rate(method: str) -> float:
    """1e-3 when every weight trains (full, scratch), 3e-3 for the small trained parts (adapters, LoRA, linear
    probe)."""
    return 1e-3 if method in ("full", "scratch") else 3e-3


def parse_args(dataclass_types, argv=None, defaults: dict | None = None):
    """``HfArgumentParser`` over ``dataclass_types`` + ``TrainingArguments``, with the package's CPU-friendly defaults
    for flags the user did not give (no reporting integrations, evaluation and saving every epoch, best model kept)."""
    from transformers import HfArgumentParser, TrainingArguments

    argv = list(sys.argv[1:] if argv is None else argv)
    given = {a.split("=")[0].lstrip("-") for a in argv if a.startswith("--")}
    extra = []
    for key, value in {
        "report_to": "none",
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "save_total_limit": "2",
        "logging_steps": "10",
        "remove_unused_columns": "False",
        "lr_scheduler_type": "cosine",
        "weight_decay": "0.01",
        "per_device_eval_batch_size": "128",
        "dataloader_num_workers": "0",
        **({} if torch.cuda.is_available() else {"use_cpu": "True"}),  # lets --bf16 run on this CPU's matrix units
        **(defaults or {}),
    }.items():
        if key not in given:
            extra += [f"--{key}", value]
    parser = HfArgumentParser((*dataclass_types, TrainingArguments))
    return parser.parse_args_into_dataclasses(args=argv + extra)


def command_line(script: str, argv=None) -> str:
    return " ".join(["python", script, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
