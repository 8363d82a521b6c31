"""Training recipes behind the example scripts, the benchmarks and the bundled checkpoints, all through ``Trainer``.

The example scripts are Trainer scripts in the transformers-examples style: ``HfArgumentParser`` over
``TrainingArguments`` and the argument dataclasses below, so every Trainer flag works (``--max_steps``,
``--save_steps``, ``--resume_from_checkpoint``, ``--push_to_hub``, ``--report_to``, ``--bf16``, ...). One feature
extractor serves the dataset transform, ``Trainer(processing_class=...)`` (so every checkpoint carries it) and
inference, as in transformers' audio-classification example.

* :func:`run_finetune`: task adaptation with the LRC-Adapter (serial or parallel) or a baseline (PEFT LoRA, linear
  probe, full fine-tuning, training from scratch); the run folder is a model repository (encoder + preprocessor at the
  root, the task adapter in ``<task>/``) that ``ECGTaskClassifier``, ``tac-ecg predict --model`` and ``tac-ecg push``
  take as it is.
* :func:`run_pretrain_cetp`: CETP pre-training on ECG-text pairs; writes the encoder at the root and the dual encoder
  in ``cetp/``.
"""

from ..adapters.batchnorm import freeze_batchnorm_statistics  # the one BatchNorm-freeze mechanism, re-exported
from .arguments import (
    ADAPTER_METHODS,
    METHODS,
    CETPArguments,
    DataArguments,
    ModelArguments,
    command_line,
    default_learning_rate,
    parse_args,
)
from .cetp import CETPCollator, encode_text_cache, freeze_text_tower, run_pretrain_cetp
from .data import (
    TransformEpochCallback,
    cross_validation_split,
    kfold_assignment,
    load_base_extractor,
    stratify_key,
    subsample,
    task_datasets,
    task_feature_extractor,
)
from .finetune import (
    FinetuneResult,
    build_classifier,
    count_parameters,
    load_best_adapter,
    resume_checkpoint,
    run_finetune,
    save_run,
    set_thresholds,
    write_run_metadata,
)

__all__ = [
    "ADAPTER_METHODS",
    "METHODS",
    "CETPArguments",
    "CETPCollator",
    "DataArguments",
    "FinetuneResult",
    "ModelArguments",
    "TransformEpochCallback",
    "build_classifier",
    "command_line",
    "count_parameters",
    "cross_validation_split",
    "default_learning_rate",
    "encode_text_cache",
    "freeze_batchnorm_statistics",
    "freeze_text_tower",
    "kfold_assignment",
    "load_base_extractor",
    "load_best_adapter",
    "parse_args",
    "resume_checkpoint",
    "run_finetune",
    "run_pretrain_cetp",
    "save_run",
    "set_thresholds",
    "stratify_key",
    "subsample",
    "task_datasets",
    "task_feature_extractor",
    "write_run_metadata",
]
