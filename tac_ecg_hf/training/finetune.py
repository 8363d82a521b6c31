"""Task adaptation with the LRC-Adapter or a baseline, through ``Trainer``; the run folder is a model repository."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..adapters.batchnorm import freeze_batchnorm_statistics
from ..tasks import TaskSpec, get_task
from .arguments import METHODS, DataArguments, ModelArguments
from .data import TransformEpochCallback, load_base_extractor, task_datasets, task_feature_extractor

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

    from ..adapters.lrc import LRCConfig
    from ..models.encoders import create_encoder_config

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
    from ..inference import resolve_model

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

    from ..evaluation import metrics_with_ci, predict_records, write_predictions
    from ..inference import ECGTaskClassifier
    from ..metrics import compute_metrics_for_trainer, find_optimal_thresholds

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

    from ..hub.code import missing_remote_code
    from ..inference import resolve_model
    from ..safety import atomic_save_pretrained

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
        if feature_extractor.settings() != root_fe.settings():
            feature_extractor.save_pretrained(out / task)
        # the copied config.json names the encoder's modules in auto_map; a bundled base holds no code
        for name, source in missing_remote_code(out).items():
            shutil.copyfile(source, out / name)
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
    from ..hub import write_card_metadata
    from ..jsonutil import dump_json, to_jsonable

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
