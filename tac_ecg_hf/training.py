"""Training utilities shared by the example scripts, the benchmarks and the bundled-checkpoint recipes.

Everything runs through ``transformers.Trainer`` (and so Accelerate): CETP pre-training and per-task fine-tuning
with the LRC-Adapter (serial or parallel) or the baselines (full fine-tuning, linear probe, PEFT LoRA, training
from scratch).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .adapters.batchnorm import freeze_batchnorm_statistics
from .tasks import TASKS, TaskSpec, get_task

METHODS = ("lrc", "lrc-parallel", "lora", "linear", "full", "scratch")


# ----------------------------------------------------------------------------------------------------------------
# parameters and frozen BatchNorm


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


# ----------------------------------------------------------------------------------------------------------------
# collators


class CETPCollator:
    """Stacks ECGs and tokenises their report texts for CETP. With ``text_cache`` (report text -> pooled text
    state, from a frozen text tower) it passes ``text_pooled`` instead of tokens."""

    def __init__(self, tokenizer, max_length: int = 128, text_cache: dict[str, torch.Tensor] | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.text_cache = text_cache

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ecg = torch.stack([torch.as_tensor(np.asarray(f["input_values"]), dtype=torch.float32) for f in features])
        if self.text_cache is not None:
            return {"input_values": ecg, "text_pooled": torch.stack([self.text_cache[str(f["text"])] for f in features])}
        tokens = self.tokenizer(
            [f["text"] for f in features], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        batch = {"input_values": ecg, "input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
        return batch


class ECGClassificationCollator:
    """Stacks ``input_values`` and labels (float multi-hot for multi-label, long ids for single-label)."""

    def __init__(self, task: TaskSpec | str):
        self.task = get_task(task) if isinstance(task, str) else task

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ecg = torch.stack([torch.as_tensor(np.asarray(f["input_values"]), dtype=torch.float32) for f in features])
        labels = [f["labels"] for f in features]
        if self.task.multi_label:
            labels = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        else:
            labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        return {"input_values": ecg, "labels": labels}


# ----------------------------------------------------------------------------------------------------------------
# model preparation per method


def build_classifier(
    base: str | os.PathLike | None,
    task: TaskSpec | str,
    method: str,
    encoder: str = "xresnet1d101",
    rank: int = 8,
    encoder_overrides: dict | None = None,
    adapter_name: str | None = None,
) -> nn.Module:
    """A model ready to fine-tune on ``task`` with ``method`` (see ``METHODS``).

    ``base`` is a pre-trained encoder checkpoint (a CETP-trained encoder, a directory or Hub id); ``scratch``
    ignores it and builds a randomly initialised ``encoder`` preset.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from .adapters.lrc import LRCConfig
    from .models.encoders import create_encoder_config

    task = get_task(task) if isinstance(task, str) else task
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    label_kwargs = dict(
        num_labels=task.num_labels, id2label=task.id2label, label2id=task.label2id, problem_type=task.problem_type
    )
    if method == "scratch" or base is None:
        if method != "scratch":
            raise ValueError(f"method {method!r} needs a pre-trained encoder checkpoint (base=...).")
        config = create_encoder_config(encoder, **(encoder_overrides or {}), **label_kwargs)
        return AutoModelForSequenceClassification.from_config(config)

    config = AutoConfig.from_pretrained(base, **label_kwargs)
    model = AutoModelForSequenceClassification.from_pretrained(base, config=config, dtype=torch.float32)
    if method == "full":
        return model
    if method == "linear":
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("head.")
        freeze_batchnorm_statistics(model)
        return model
    if method == "lora":
        conv_names = [
            name for name, m in model.named_modules() if isinstance(m, nn.Conv1d) and m.kernel_size[0] > 1 and m.dilation[0] == 1
        ]
        lora = LoraConfig(r=rank, lora_alpha=rank, target_modules=conv_names, modules_to_save=["head"])
        peft_model = get_peft_model(model, lora, adapter_name=adapter_name or "default")
        freeze_batchnorm_statistics(peft_model)
        return peft_model
    variant = "serial" if method == "lrc" else "parallel"
    lrc = LRCConfig.for_task(task.name, variant=variant, r=rank)
    lrc.base_model_name_or_path = str(base)
    return get_peft_model(model, lrc, adapter_name=adapter_name or task.name)


# ----------------------------------------------------------------------------------------------------------------
# fine-tuning


def default_learning_rate(method: str) -> float:
    """Learning rate ``finetune`` uses when none is given: 1e-3 when every weight trains (full, scratch),
    3e-3 for the small trained parts (adapters, LoRA, linear probe)."""
    return 1e-3 if method in ("full", "scratch") else 3e-3


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
    test_scores: list = field(default_factory=list, repr=False)
    test_references: list = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("test_scores")
        data.pop("test_references")
        return data


def training_arguments(output_dir: str | os.PathLike, **overrides):
    """``TrainingArguments`` with CPU-friendly defaults (no reporting integrations, safetensors only)."""
    from transformers import TrainingArguments

    defaults = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=64,
        per_device_eval_batch_size=128,
        learning_rate=1e-3,
        num_train_epochs=10,
        weight_decay=1e-2,
        warmup_steps=0,
        lr_scheduler_type="cosine",
        logging_steps=10,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
        seed=0,
        use_cpu=not torch.cuda.is_available(),
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


def finetune(
    dataset,
    task: TaskSpec | str,
    method: str,
    base: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    seed: int = 0,
    epochs: float = 10,
    learning_rate: float | None = None,
    batch_size: int = 64,
    rank: int = 8,
    encoder: str = "xresnet1d101",
    encoder_overrides: dict | None = None,
    save: bool = True,
    resume: bool = False,
    **training_overrides,
) -> tuple[nn.Module, FinetuneResult]:
    """Fine-tune ``method`` on ``dataset`` (a ``DatasetDict`` with train/validation/test) and evaluate on test.

    With ``resume=True`` (and checkpoints from ``save_strategy="steps"``/``"epoch"`` in ``output_dir``) training
    continues from the last *complete* checkpoint (see :func:`last_complete_checkpoint`) with the result the
    uninterrupted run would have had."""
    from transformers import Trainer, set_seed

    from .metrics import compute_metrics_for_trainer

    task = get_task(task) if isinstance(task, str) else task
    set_seed(seed)
    model = build_classifier(base, task, method, encoder=encoder, rank=rank, encoder_overrides=encoder_overrides)
    trainable, total = count_parameters(model)
    if learning_rate is None:
        learning_rate = default_learning_rate(method)
    args = training_arguments(
        output_dir,
        seed=seed,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        **training_overrides,
    )
    columns = ["input_values", "labels"]
    train = dataset["train"].with_format("numpy", columns=columns)
    val = dataset["validation"].with_format("numpy", columns=columns)
    test = dataset["test"].with_format("numpy", columns=columns)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=val,
        data_collator=ECGClassificationCollator(task),
        compute_metrics=compute_metrics_for_trainer(task.name),
    )
    start = time.perf_counter()
    checkpoint = last_complete_checkpoint(output_dir, quarantine=True) if resume else None
    train_output = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    val_metrics = trainer.evaluate(val, metric_key_prefix="val")
    prediction = trainer.predict(test, metric_key_prefix="test")
    test_metrics = {k: float(v) for k, v in prediction.metrics.items() if isinstance(v, (int, float))}
    result = FinetuneResult(
        task=task.name,
        method=method,
        seed=seed,
        trainable_params=trainable,
        total_params=total,
        test_metrics=test_metrics,
        val_metrics={k: float(v) for k, v in val_metrics.items() if isinstance(v, (int, float))},
        train_seconds=seconds,
        train_samples_per_second=float(train_output.metrics.get("train_samples_per_second", math.nan)),
        test_scores=np.asarray(prediction.predictions).tolist(),
        test_references=np.asarray(prediction.label_ids).tolist(),
    )
    if save and trainer.is_world_process_zero():
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return model, result


# ----------------------------------------------------------------------------------------------------------------
# resuming interrupted runs

_WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.bin")


def checkpoint_is_complete(folder: str | os.PathLike) -> bool:
    """Whether a ``Trainer`` checkpoint folder was written to the end: ``Trainer`` writes the weights, then the
    optimizer, scheduler and RNG states, and ``trainer_state.json`` last; a run killed while saving leaves a folder
    without a readable ``trainer_state.json`` (or without weights)."""
    folder = Path(folder)
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict) or "global_step" not in state:
        return False
    return any(p.name in _WEIGHT_FILES for p in folder.rglob("*") if p.is_file())


def last_complete_checkpoint(output_dir: str | os.PathLike, quarantine: bool = False) -> str | None:
    """The newest complete ``checkpoint-<step>`` folder in ``output_dir`` (None if there is none).

    ``Trainer.train(resume_from_checkpoint=True)`` takes the newest folder even when a kill interrupted its
    writing. Pass this function's result instead, or call it with ``quarantine=True`` first: incomplete checkpoint
    folders are then renamed ``incomplete-checkpoint-<step>`` so that ``resume_from_checkpoint=True`` skips them.
    """
    import re

    out = Path(output_dir)
    if not out.is_dir():
        return None
    found = []
    for entry in out.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    best = None
    for step, entry in sorted(found, reverse=True):
        if checkpoint_is_complete(entry):
            best = best or entry
            if not quarantine:
                break
        elif quarantine and best is None:
            target = out / f"incomplete-{entry.name}"
            if target.exists():
                target = out / f"incomplete-{entry.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            entry.rename(target)
    return str(best) if best is not None else None


# ----------------------------------------------------------------------------------------------------------------
# CETP pre-training


def freeze_text_tower(model, trainable_layers: int) -> None:
    """Freeze the text tower except its top ``trainable_layers`` transformer layers (-1: train all)."""
    if trainable_layers < 0:
        return
    text = model.text_model
    for param in text.parameters():
        param.requires_grad = False
    layers = None
    for attr in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        obj = text
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
    for start in tqdm(range(0, len(texts), batch_size), desc="encoding report texts", unit="batch"):
        chunk = texts[start : start + batch_size]
        tok = tokenizer(chunk, padding=True, truncation=True, max_length=model.config.max_text_length, return_tensors="pt")
        pooled = model.pool_text(tok["input_ids"], tok["attention_mask"])
        cache.update(zip(chunk, pooled))
    model.text_model.train(was_training)
    return cache


def pretrain_cetp(
    pairs,
    output_dir: str | os.PathLike,
    encoder: str | nn.Module = "xresnet1d101",
    text_model: str | None = None,
    encoder_overrides: dict | None = None,
    projection_dim: int = 256,
    text_trainable_layers: int = 0,
    epochs: float = 20,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    save: bool = True,
    **training_overrides,
):
    """CETP pre-training on a ``DatasetDict`` of (``input_values``, ``text``) pairs with train/validation splits.

    Saves the full CETP model to ``output_dir/cetp`` and the ECG encoder alone to ``output_dir/encoder``
    (what downstream adapters load). Returns ``(model, metrics)``.
    """
    from transformers import AutoTokenizer, Trainer, set_seed

    from .models.cetp import CETPModel, default_text_model_path
    from .models.encoders import ENCODER_FAMILIES, create_encoder_config

    set_seed(seed)
    text_model = text_model or default_text_model_path()
    if isinstance(encoder, str):
        config = create_encoder_config(encoder, **(encoder_overrides or {}))
        encoder = ENCODER_FAMILIES[config.model_type][1](config)
    model = CETPModel.from_ecg_text_pretrained(encoder, text_model, projection_dim=projection_dim)
    freeze_text_tower(model, text_trainable_layers)
    tokenizer = AutoTokenizer.from_pretrained(text_model)
    args = training_arguments(
        output_dir,
        seed=seed,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        label_names=[],
        **training_overrides,
    )
    train = pairs["train"].with_format("numpy", columns=["input_values", "text"])
    val = pairs["validation"].with_format("numpy", columns=["input_values", "text"]) if "validation" in pairs else None
    text_cache = None
    if text_trainable_layers == 0:
        texts = sorted({str(t) for split in pairs.values() for t in split["text"]})
        text_cache = encode_text_cache(model, tokenizer, texts)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=val,
        data_collator=CETPCollator(tokenizer, max_length=model.config.max_text_length, text_cache=text_cache),
    )
    start = time.perf_counter()
    output = trainer.train()
    metrics = {"train_seconds": time.perf_counter() - start, **output.metrics}
    if val is not None:
        metrics.update(trainer.evaluate())
    if save and trainer.is_world_process_zero():
        out = Path(output_dir)
        from .safety import atomic_save_pretrained

        atomic_save_pretrained(model, out / "cetp")
        tokenizer.save_pretrained(out / "cetp")
        atomic_save_pretrained(model.ecg_model, out / "encoder")
        (out / "cetp_metrics.json").write_text(json.dumps({k: float(v) for k, v in metrics.items()}, indent=2))
    return model, metrics


def save_finetuned(model, result: FinetuneResult, output_dir: str | os.PathLike, command: str | None = None) -> Path:
    """Save a fine-tuned model: adapter methods write ``<output_dir>/adapters/<task>/`` (safetensors), with the
    held-out metrics, seed and command recorded in ``adapter_config.json``; other methods write ``<output_dir>/model``.
    Writes are atomic (:func:`~tac_ecg_hf.safety.atomic_save_pretrained`): a killed run leaves the previous adapter or
    model intact, never a half-written one."""
    from .adapters.lrc import LRCConfig
    from .safety import atomic_save_pretrained

    out = Path(output_dir)
    record = {
        **{k: round(v, 6) for k, v in result.test_metrics.items() if isinstance(v, float) and not k.endswith("_runtime")},
        "seed": result.seed,
        "trainable_params": result.trainable_params,
        "total_params": result.total_params,
    }
    if command:
        record["command"] = command
    if hasattr(model, "peft_config"):
        for name, config in model.peft_config.items():
            if isinstance(config, LRCConfig):
                config.metrics = record
                config.preprocessing = config.preprocessing or task_preprocessing(result.task, model.base_model.model.config)
        atomic_save_pretrained(model, out / "adapters")
        target = out / "adapters" / (result.task if result.task in model.peft_config else "")
    else:
        atomic_save_pretrained(model, out / "model")
        target = out / "model"
    (out / "result.json").write_text(json.dumps({**result.to_dict(), "command": command}, indent=2))
    return target


def task_preprocessing(task: str, encoder_config) -> dict:
    """``ECGPreprocessor`` settings for ``task`` on an encoder: its leads, rate and window; leads the task's source
    lacks (one-lead CinC2017) are zero-filled. Stored in each adapter's config; also the loaders' fallback."""
    spec = TASKS.get(task)
    return {
        "target_leads": list(encoder_config.lead_names),
        "sampling_rate": encoder_config.sampling_rate,
        "num_samples": encoder_config.num_samples,
        "fill_missing_leads": spec is not None and len(spec.source_leads) < len(encoder_config.lead_names),
    }
