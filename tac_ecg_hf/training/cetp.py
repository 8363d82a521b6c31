"""CETP pre-training (TAC-ECG phase 1) through ``Trainer``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidArgumentError
from .arguments import CETPArguments, DataArguments
from .data import TransformEpochCallback, cross_validation_split
from .finetune import resume_checkpoint

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

    from ..data.augment import ECGAugment
    from ..data.builders import ECGTransform, load_cetp_pairs, with_transform
    from ..data.feature_extraction_ecg import ECGFeatureExtractor
    from ..inference import CETP_SUBFOLDER
    from ..jsonutil import dump_json
    from ..models.cetp import DEFAULT_TEXT_MODEL_ID, CETPModel
    from ..models.encoders import ENCODER_FAMILIES, create_encoder_config
    from ..safety import atomic_save_pretrained

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
