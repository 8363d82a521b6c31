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

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import TrainerCallback

from .adapters.batchnorm import freeze_batchnorm_statistics
from .errors import InvalidArgumentError
from .tasks import TASKS, TaskSpec, get_task

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
    data_dir: str = field(default="../shared/data", metadata={"help": "Data root laid out like ../shared/data."})
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


# ----------------------------------------------------------------------------------------------------------------
# feature extractors and data


def task_feature_extractor(task: str, base_extractor):
    """The feature extractor a task reads its input with: the encoder's, restricted to the task's leads (a single-lead
    task reads lead I of the 12-lead encoder; the other leads stay zero, as the adapter is trained)."""
    from .data.feature_extraction_ecg import ECGFeatureExtractor

    spec = get_task(task)
    settings = {k: v for k, v in base_extractor.to_dict().items() if k != "feature_extractor_type"}
    if tuple(spec.source_leads) != tuple(settings["lead_names"]):
        settings["input_leads"] = list(spec.source_leads)
    return ECGFeatureExtractor(**settings)


def load_base_extractor(base_model: str | None):
    """The feature extractor saved with an encoder (default for training from scratch: 12 leads, 100 Hz, 10 s,
    0.5-40 Hz, like the PTB-XL training arrays)."""
    from .data.feature_extraction_ecg import ECGFeatureExtractor

    if base_model is None:
        return ECGFeatureExtractor()
    from .inference import load_feature_extractor, resolve_model

    return load_feature_extractor(resolve_model(base_model))


def stratify_key(example_labels: Any) -> str:
    """A stratification key: the class id, or the multi-hot pattern."""
    if isinstance(example_labels, (list, tuple, np.ndarray)):
        return "".join("1" if v > 0.5 else "0" for v in example_labels)
    return str(int(example_labels))


def kfold_assignment(keys: list[str], k: int, seed: int = 0) -> np.ndarray:
    """Stratified fold ids 0..k-1 (scikit-learn's ``StratifiedKFold``; rare multi-label patterns are pooled so that
    every stratum has at least k members)."""
    from collections import Counter

    from sklearn.model_selection import StratifiedKFold

    counts = Counter(keys)
    pooled = [key if counts[key] >= k else "rare" for key in keys]
    if Counter(pooled)["rare"] and Counter(pooled)["rare"] < k:
        pooled = [key if key != "rare" else max(counts, key=counts.get) for key in pooled]
    folds = np.zeros(len(keys), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(keys)), pooled)):
        folds[test] = fold
    return folds


def cross_validation_split(dataset, k: int, fold: int, seed: int = 0):
    """Re-split a ``DatasetDict`` for fold ``fold`` of a k-fold CV: test fold ``fold``, validation fold ``fold-1``,
    training the rest. PTB-XL records keep their official, patient-wise ``strat_fold``: with ``k=10`` that is TAC-ECG's
    protocol (test fold ``fold+1``, validation the one before); with other ``k`` the strat_folds are grouped
    (``(strat_fold - 1) % k``). The other records are split by stratified k-fold over all their splits."""
    import datasets as hf_datasets

    pool = hf_datasets.concatenate_datasets([dataset[s] for s in dataset])
    strat = np.asarray(pool["fold"])
    fold_of = np.where(strat >= 1, (strat - 1) % k, -1)
    others = np.flatnonzero(strat < 1).tolist()
    if others and "labels" in pool.column_names:
        labels = pool.select(others)["labels"]
        fold_of[others] = kfold_assignment([stratify_key(y) for y in labels], k, seed)
    elif others:  # ECG-text pairs carry no labels: a deterministic random assignment
        fold_of[others] = np.random.default_rng(seed).permutation(len(others)) % k
    validation = (fold - 1) % k
    index = {
        "train": np.flatnonzero((fold_of != fold) & (fold_of != validation)),
        "validation": np.flatnonzero(fold_of == validation),
        "test": np.flatnonzero(fold_of == fold),
    }
    return hf_datasets.DatasetDict({s: pool.select(i.tolist()) for s, i in index.items()})


def subsample(dataset, fraction: float, seed: int = 0):
    """A stratified ``fraction`` of a split (label-efficiency runs); at least one record per stratum."""
    if fraction >= 1:
        return dataset
    rng = np.random.default_rng(seed)
    keys = [stratify_key(y) for y in dataset["labels"]]
    chosen = []
    for key in sorted(set(keys)):
        members = [i for i, k in enumerate(keys) if k == key]
        n = max(1, int(round(fraction * len(members))))
        chosen += rng.choice(members, size=n, replace=False).tolist()
    return dataset.select(sorted(chosen))


class TransformEpochCallback(TrainerCallback):
    """Tells the training set's :class:`~tac_ecg_hf.data.builders.ECGTransform` which epoch begins, so that its
    per-example random crops and augmentations change from epoch to epoch and a run resumed mid-epoch repeats them
    exactly. (Workers of a ``DataLoader`` with ``persistent_workers`` would keep the epoch they started with.)"""

    def __init__(self, *transforms):
        self.transforms = transforms

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch counts epochs as a float: whole at the start of an epoch, inside it when resuming mid-way
        for transform in self.transforms:
            transform.epoch = int(state.epoch or 0)


def task_datasets(data_args: DataArguments, feature_extractor, seed: int = 0):
    """The task's ``DatasetDict`` (every source, one label space), re-split for CV and subsampled as asked, with the
    feature extractor's transforms set (random crops and augmentation for training, the centre window otherwise), and
    the training transform (for :class:`TransformEpochCallback`)."""
    from .data.augment import ECGAugment
    from .data.builders import ECGTransform, load_task_dataset

    dataset = load_task_dataset(
        data_args.task,
        data_args.data_dir,
        sources=data_args.source_list,
        feature_extractor=feature_extractor,
        cache_dir=data_args.cache_dir,
        max_records=data_args.max_records,
    )
    if data_args.cv_folds:
        dataset = cross_validation_split(dataset, data_args.cv_folds, data_args.cv_fold, seed=seed)
    dataset["train"] = subsample(dataset["train"], data_args.label_fraction, seed=seed)
    augment = ECGAugment() if data_args.augment else None
    train_transform = ECGTransform(feature_extractor, train=True, augment=augment, seed=seed)
    dataset["train"].set_transform(train_transform)
    for split in ("validation", "test"):
        dataset[split].set_transform(ECGTransform(feature_extractor, train=False))
    return dataset, train_transform


# ----------------------------------------------------------------------------------------------------------------
# models


def build_classifier(
    base: str | os.PathLike | None,
    task: TaskSpec | str,
    method: str,
    encoder: str = "xresnet1d101",
    rank: int = 8,
    encoder_overrides: dict | None = None,
    adapter_name: str | None = None,
) -> nn.Module:
    """A model ready to fine-tune on ``task`` with ``method`` (see ``METHODS``): ``base`` is a pre-trained encoder
    (a folder, bundled id or Hub id); ``scratch`` builds a randomly initialised ``encoder`` preset instead."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from .adapters.lrc import LRCConfig
    from .models.encoders import create_encoder_config

    task = get_task(task) if isinstance(task, str) else task
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    label_kwargs = dict(
        num_labels=task.num_labels, id2label=task.id2label, label2id=task.label2id, problem_type=task.problem_type
    )
    if method == "scratch":
        config = create_encoder_config(encoder, **(encoder_overrides or {}), **label_kwargs)
        return AutoModelForSequenceClassification.from_config(config)
    if base is None:
        raise ValueError(f"method {method!r} needs a pre-trained encoder checkpoint (base=...).")
    from .inference import resolve_model

    path = resolve_model(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, dtype=torch.float32, use_safetensors=True, **label_kwargs
    )
    model.config._name_or_path = str(base)
    if method == "full":
        return model
    if method == "linear":
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("head.")
        freeze_batchnorm_statistics(model)
        return model
    if method == "lora":
        conv_names = [
            name
            for name, m in model.named_modules()
            if isinstance(m, nn.Conv1d) and m.kernel_size[0] > 1 and m.dilation[0] == 1
        ]
        lora = LoraConfig(r=rank, lora_alpha=rank, target_modules=conv_names, modules_to_save=["head"])
        peft_model = get_peft_model(model, lora, adapter_name=adapter_name or task.name)
        freeze_batchnorm_statistics(peft_model)
        return peft_model
    variant = "serial" if method == "lrc" else "parallel"
    lrc = LRCConfig.for_task(task.name, variant=variant, r=rank)
    lrc.base_model_name_or_path = str(base)
    return get_peft_model(model, lrc, adapter_name=adapter_name or task.name)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, as PEFT (``get_nb_trainable_parameters``) or transformers
    (``num_parameters``) count them."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return tuple(model.get_nb_trainable_parameters())
    if hasattr(model, "num_parameters"):
        return model.num_parameters(only_trainable=True), model.num_parameters()
    return sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------------
# fine-tuning


@dataclass
class FinetuneResult:
    task: str
    method: str
    seed: int
    trainable_params: int
    total_params: int
    test_metrics: dict
    val_metrics: dict
    train_seconds: float
    train_samples_per_second: float
    thresholds: list | None = None
    output_dir: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def resume_checkpoint(training_args) -> str | None:
    """The checkpoint to resume from, as transformers' example scripts choose it: ``--resume_from_checkpoint`` (a
    path, or ``True`` for the newest in ``--output_dir``), else the newest complete one of an existing output folder.
    A checkpoint folder a killed run left without ``trainer_state.json`` (Trainer writes it last) is skipped."""
    from transformers.trainer_utils import get_last_checkpoint

    requested = training_args.resume_from_checkpoint
    if requested not in (None, "", "True", "true", True):
        return str(requested)
    out = Path(training_args.output_dir)
    if not out.is_dir():
        return None
    while True:
        last = get_last_checkpoint(str(out))
        if last is None or (Path(last) / "trainer_state.json").is_file():
            return last
        os.replace(last, out / f"incomplete-{Path(last).name}")  # get_last_checkpoint would pick it again


def run_finetune(
    model_args: ModelArguments, data_args: DataArguments, training_args, command: str | None = None
) -> FinetuneResult:
    """Train one task adapter (or baseline), calibrate its thresholds, evaluate it through the public predict path,
    and save the run folder as a model repository."""
    from transformers import Trainer, default_data_collator, set_seed

    from .evaluation import metrics_with_ci, predict_records, write_predictions
    from .inference import ECGTaskClassifier
    from .metrics import compute_metrics_for_trainer, find_optimal_thresholds

    set_seed(training_args.seed)
    training_args.remove_unused_columns = False  # the transform needs the stored signal columns
    task = get_task(data_args.task)
    fe = task_feature_extractor(task.name, load_base_extractor(model_args.base_model))
    dataset, train_transform = task_datasets(data_args, fe, seed=training_args.seed)
    model = build_classifier(
        model_args.base_model,
        task,
        model_args.method,
        encoder=model_args.encoder,
        rank=model_args.rank,
        encoder_overrides=json.loads(model_args.encoder_overrides),
    )
    trainable, total = count_parameters(model)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["validation"] if len(dataset["validation"]) else None,
        processing_class=fe,
        data_collator=default_data_collator,
        compute_metrics=compute_metrics_for_trainer(task.name),
        callbacks=[TransformEpochCallback(train_transform)],
    )
    start = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=resume_checkpoint(training_args))
    seconds = time.perf_counter() - start
    load_best_adapter(trainer, task.name)
    result = FinetuneResult(
        task=task.name,
        method=model_args.method,
        seed=training_args.seed,
        trainable_params=trainable,
        total_params=total,
        test_metrics={},
        val_metrics={},
        train_seconds=seconds,
        train_samples_per_second=float(train_output.metrics.get("train_samples_per_second", math.nan)),
        output_dir=str(training_args.output_dir),
    )
    if not trainer.is_world_process_zero():
        return result
    out = Path(training_args.output_dir)
    save_run(trainer.model, fe, task.name, model_args, out)
    records = {
        split: dataset[split].select_columns(["database", "record_id"]).to_list() for split in ("validation", "test")
    }
    classifier = ECGTaskClassifier.from_pretrained(out, tasks=[task.name])
    if records["validation"]:
        probs, refs, _ = predict_records(classifier, task.name, data_args.data_dir, records["validation"])
        if task.multi_label:
            result.thresholds = [
                0.5 if np.isnan(t) else float(t) for t in find_optimal_thresholds(probs, refs, multi_label=True)
            ]
            classifier.set_thresholds(task.name, result.thresholds)
            set_thresholds(out, task.name, result.thresholds)
        result.val_metrics = metrics_with_ci(probs, refs, task.name, result.thresholds, n_bootstrap=0)
    if records["test"]:
        probs, refs, predictions = predict_records(classifier, task.name, data_args.data_dir, records["test"])
        write_predictions(out / "test_predictions.jsonl", records["test"], predictions, refs)
        result.test_metrics = {
            "n": len(refs),
            **metrics_with_ci(probs, refs, task.name, result.thresholds, n_bootstrap=data_args.bootstrap_resamples),
        }
    write_run_metadata(out, result, data_args, model_args, command)
    return result


def load_best_adapter(trainer, adapter_name: str) -> None:
    """``load_best_model_at_end`` for a named PEFT adapter. Trainer looks for the adapter files at the checkpoint's
    root, where PEFT saves only an adapter called "default"; a named adapter is in ``<checkpoint>/<name>/``, so Trainer
    warns and keeps the last weights. Load the best checkpoint's adapter weights from there instead."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    best = trainer.state.best_model_checkpoint
    if not (trainer.args.load_best_model_at_end and best and isinstance(trainer.model, PeftModel)):
        return
    weights = Path(best) / adapter_name / "adapter_model.safetensors"
    if weights.is_file():
        result = set_peft_model_state_dict(trainer.model, load_file(weights), adapter_name=adapter_name)
        if getattr(result, "unexpected_keys", None):
            raise RuntimeError(f"best checkpoint {best}: unexpected adapter keys {result.unexpected_keys[:3]}")


def save_run(model, feature_extractor, task: str, model_args: ModelArguments, out: Path) -> None:
    """The run folder as a model repository. Adapter methods: the frozen encoder's files copied unchanged from the base
    model, its feature extractor at the root, and the task adapter in ``<task>/`` (PEFT's layout for a named adapter)
    with its own ``preprocessor_config.json`` when the task reads other leads. Full/linear/scratch: the whole
    classifier and the feature extractor at the root."""
    import shutil

    from peft import PeftModel

    from .inference import resolve_model
    from .safety import atomic_save_pretrained

    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        base = resolve_model(model_args.base_model)
        for path in base.iterdir():
            if path.is_file() and (path.name == "config.json" or path.name.startswith("model.safetensors")):
                shutil.copy2(path, out / path.name)
        # <out>/<task>/adapter_config.json + adapter_model.safetensors, as a unit
        atomic_save_pretrained(model, out, save_embedding_layers=False)
        root_fe = load_base_extractor(model_args.base_model)
        root_fe.save_pretrained(out)
        if feature_extractor.to_dict() != root_fe.to_dict():
            feature_extractor.save_pretrained(out / task)
        return
    atomic_save_pretrained(model, out / ".model-tmp")
    for name in os.listdir(out / ".model-tmp"):
        os.replace(out / ".model-tmp" / name, out / name)
    os.rmdir(out / ".model-tmp")
    feature_extractor.save_pretrained(out)


def set_thresholds(out: Path, task: str, thresholds: list[float]) -> None:
    """Store calibrated per-class thresholds in the task adapter's ``adapter_config.json``, or for a fully fine-tuned
    classifier (no adapter) in its ``config.json`` under ``task_specific_params[task]``."""
    values = [round(float(t), 6) for t in thresholds]
    path = out / task / "adapter_config.json"
    if path.is_file():
        config = json.loads(path.read_text())
        config["thresholds"] = values
    else:
        path = out / "config.json"
        config = json.loads(path.read_text())
        config["task_specific_params"] = {**(config.get("task_specific_params") or {}), task: {"thresholds": values}}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_run_metadata(out: Path, result: FinetuneResult, data_args, model_args, command: str | None) -> None:
    """``result.json`` (everything), the metrics in the adapter config and ``card_metadata.json`` for the model card
    (no NaN anywhere: ``null``)."""
    from .hub import write_card_metadata
    from .jsonutil import dump_json, to_jsonable

    record = to_jsonable(
        {
            "task": result.task,
            "method": result.method,
            "seed": result.seed,
            "base_model": model_args.base_model,
            "sources": data_args.source_list,
            "command": command,
            "trainable_params": result.trainable_params,
            "total_params": result.total_params,
            "thresholds": result.thresholds,
            "test": result.test_metrics,
            "validation": result.val_metrics,
            "train_seconds": result.train_seconds,
            "label_fraction": data_args.label_fraction,
            "cv": {"folds": data_args.cv_folds, "fold": data_args.cv_fold} if data_args.cv_folds else None,
        }
    )
    dump_json(record, out / "result.json")
    folder = out / result.task if (out / result.task / "adapter_config.json").is_file() else out
    if folder != out:
        config = json.loads((folder / "adapter_config.json").read_text())
        config["metrics"] = {k: v for k, v in record.items() if k != "thresholds"}
        dump_json(config, folder / "adapter_config.json")
    write_card_metadata(
        folder,
        task=result.task,
        method=result.method,
        metrics=record["test"],
        split="test",
        command=command,
        seed=result.seed,
        base_model=model_args.base_model,
    )


# ----------------------------------------------------------------------------------------------------------------
# CETP pre-training


class CETPCollator:
    """Stacks the ECG windows and tokenises their texts for CETP. With ``text_cache`` (text -> pooled text state, from
    a frozen text tower) it passes ``text_pooled`` instead of tokens."""

    def __init__(self, tokenizer, max_length: int = 128, text_cache: dict[str, torch.Tensor] | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.text_cache = text_cache

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ecg = torch.stack([torch.as_tensor(np.asarray(f["input_values"]), dtype=torch.float32) for f in features])
        if self.text_cache is not None:
            return {
                "input_values": ecg,
                "text_pooled": torch.stack([self.text_cache[str(f["text"])] for f in features]),
            }
        tokens = self.tokenizer(
            [f["text"] for f in features],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_values": ecg, "input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}


def freeze_text_tower(model, trainable_layers: int) -> None:
    """Freeze the text tower except its top ``trainable_layers`` transformer layers (-1: train all)."""
    if trainable_layers < 0:
        return
    for param in model.text_model.parameters():
        param.requires_grad = False
    layers = None
    for attr in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        obj = model.text_model
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        layers = obj
        break
    if layers is not None and trainable_layers > 0:
        for layer in list(layers)[-trainable_layers:]:
            for param in layer.parameters():
                param.requires_grad = True


@torch.no_grad()
def encode_text_cache(model, tokenizer, texts: list[str], batch_size: int = 128) -> dict[str, torch.Tensor]:
    """Pooled states of a frozen text tower for each distinct text (computed once, with a progress bar)."""
    from tqdm.auto import tqdm

    was_training = model.text_model.training
    model.text_model.eval()
    cache: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, len(texts), batch_size), desc="encoding texts", unit="batch"):
        chunk = texts[start : start + batch_size]
        tok = tokenizer(
            chunk, padding=True, truncation=True, max_length=model.config.max_text_length, return_tensors="pt"
        )
        cache.update(zip(chunk, model.pool_text(tok["input_ids"], tok["attention_mask"])))
    model.text_model.train(was_training)
    return cache


def run_pretrain_cetp(cetp_args: CETPArguments, data_args: DataArguments, training_args, command: str | None = None):
    """CETP on the ECG-text pairs of every CETP source (training splits only for training, validation for model
    selection, never a test record), with augmentation when ``--augment``. Writes the ECG encoder and its feature
    extractor at the output folder's root and the dual encoder in ``cetp/``. Returns ``(model, metrics)``."""
    from transformers import AutoTokenizer, Trainer, set_seed

    from .data.augment import ECGAugment
    from .data.builders import ECGTransform, load_cetp_pairs, with_transform
    from .data.feature_extraction_ecg import ECGFeatureExtractor
    from .inference import CETP_SUBFOLDER
    from .jsonutil import dump_json
    from .models.cetp import DEFAULT_TEXT_MODEL_ID, CETPModel
    from .models.encoders import ENCODER_FAMILIES, create_encoder_config
    from .safety import atomic_save_pretrained

    set_seed(training_args.seed)
    config = create_encoder_config(cetp_args.encoder, **json.loads(cetp_args.encoder_overrides))
    fe = ECGFeatureExtractor(
        lead_names=config.lead_names, sampling_rate=config.sampling_rate, num_samples=config.num_samples
    )
    pairs = load_cetp_pairs(
        data_args.data_dir,
        sources=data_args.source_list,
        text_source=cetp_args.text_source,
        feature_extractor=fe,
        cache_dir=data_args.cache_dir,
        max_records=data_args.max_records,
        streaming=data_args.streaming,
    )
    if data_args.streaming and (data_args.cv_folds or training_args.max_steps <= 0):
        raise InvalidArgumentError("--streaming needs --max_steps (a stream has no length) and no --cv_folds.")
    if data_args.cv_folds:  # CETP on the training folds' pairs only (the label-efficiency and claims benchmarks)
        pairs = cross_validation_split(pairs, data_args.cv_folds, data_args.cv_fold, seed=training_args.seed)
    pairs.pop("test")  # never seen in pre-training
    text_model = cetp_args.text_model or DEFAULT_TEXT_MODEL_ID
    model = CETPModel.from_ecg_text_pretrained(
        ENCODER_FAMILIES[config.model_type][1](config), text_model, projection_dim=cetp_args.projection_dim
    )
    freeze_text_tower(model, cetp_args.text_trainable_layers)
    tokenizer = AutoTokenizer.from_pretrained(model.text_model_path())
    text_cache = None
    if cetp_args.text_trainable_layers == 0 and not data_args.streaming:  # a stream's texts are tokenised as they come
        text_cache = encode_text_cache(
            model, tokenizer, sorted({t for split in pairs.values() for t in split["text"]})
        )
    train_transform = ECGTransform(
        fe, train=True, augment=ECGAugment() if data_args.augment else None, seed=training_args.seed, keep=("text",)
    )
    pairs["train"] = with_transform(pairs["train"], train_transform)
    pairs["validation"] = with_transform(pairs["validation"], ECGTransform(fe, train=False, keep=("text",)))
    has_validation = data_args.streaming or len(pairs["validation"]) > 0
    training_args.label_names = []
    training_args.remove_unused_columns = False  # the transform needs the stored signal and text columns
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=pairs["train"],
        eval_dataset=pairs["validation"] if has_validation else None,
        processing_class=fe,
        data_collator=CETPCollator(tokenizer, max_length=model.config.max_text_length, text_cache=text_cache),
        callbacks=[TransformEpochCallback(train_transform)],
    )
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume_checkpoint(training_args))
    metrics = {
        "train_seconds": time.perf_counter() - start,
        **output.metrics,
        "train_pairs": None if data_args.streaming else len(pairs["train"]),
        "validation_pairs": None if data_args.streaming else len(pairs["validation"]),
    }
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    if trainer.is_world_process_zero():
        out = Path(training_args.output_dir)
        atomic_save_pretrained(model, out / CETP_SUBFOLDER)
        atomic_save_pretrained(model.ecg_model, out / ".encoder-tmp")
        for name in os.listdir(out / ".encoder-tmp"):
            os.replace(out / ".encoder-tmp" / name, out / name)
        os.rmdir(out / ".encoder-tmp")
        fe.save_pretrained(out)
        fe.save_pretrained(out / CETP_SUBFOLDER)
        dump_json(
            {
                **metrics,
                "command": command,
                "seed": training_args.seed,
                "sources": data_args.source_list,
                "text_source": cetp_args.text_source,
                "augment": data_args.augment,
            },
            out / "cetp_metrics.json",
        )
    return model, metrics
