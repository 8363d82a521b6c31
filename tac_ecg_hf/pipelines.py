"""transformers pipelines for ECGs: ``ecg-classification`` (a task adapter) and ``zero-shot-ecg-classification``
(CETP).

    >>> from transformers import pipeline
    >>> classify = pipeline("ecg-classification", model="tac-ecg/xresnet1d101-cetp", adapter="cpsc2018")
    >>> classify("A0001.hea", top_k=3)
    [{'label': 'RBBB', 'score': 0.60}, ...]
    >>> zero_shot = pipeline("zero-shot-ecg-classification", model="tac-ecg/xresnet1d101-cetp")
    >>> zero_shot("A0001.hea", candidate_labels=["normal ECG", "atrial fibrillation", "right bundle branch block"])

Inputs: a file path (WFDB ``.hea``, ``.mat``, ``.npy``, ``.csv``), an ``ECGRecord``, a ``(leads, samples)`` array or
tensor with ``sampling_rate=`` and ``lead_names=``, a dict ``{"signal", "sampling_rate", "lead_names"}``, or a list of
those (``batch_size=`` packs the windows of several records into one forward pass). Both are ``ChunkPipeline``s, as
transformers' chunked speech recognition: a record is cut into the model's windows by the feature extractor saved with
the model, and the window outputs are averaged. The feature extractor's notes (padding, resampling, leads ignored or
derived) come back in each result dict under ``"notes"`` when there are any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel
from transformers.pipelines.base import ChunkPipeline

from .errors import InvalidArgumentError
from .inference import CETP_SUBFOLDER, check_threshold, decide, load_feature_extractor

__all__ = ["ECGClassificationPipeline", "ZeroShotECGClassificationPipeline", "register_pipelines"]


def _repo_folder(model) -> Path | None:
    """The local folder the model was loaded from (a folder, the bundled copy, or the Hub cache)."""
    from .inference import resolve_model

    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    if not name:
        return None
    return resolve_model(name)


def _as_record(inputs: Any, sampling_rate, lead_names):
    from .inference import as_record

    if isinstance(inputs, dict):
        unknown = set(inputs) - {"signal", "array", "sampling_rate", "lead_names"}
        if unknown:
            raise InvalidArgumentError(
                f"An input dict holds 'signal', 'sampling_rate' and 'lead_names'; got extra keys {sorted(unknown)}."
            )
        signal = inputs.get("signal", inputs.get("array"))
        return as_record(signal, sampling_rate=inputs.get("sampling_rate"), lead_names=inputs.get("lead_names"))
    return as_record(inputs, sampling_rate=sampling_rate, lead_names=lead_names)


class _ECGChunkPipeline(ChunkPipeline):
    """Shared preprocessing: read the record, prepare it once, and yield its windows one by one."""

    # None: transformers' pipeline() loads the feature extractor when it can (a model id or folder) and leaves it to
    # the pipeline otherwise (a model object, e.g. a PeftModel): each task's own comes from the model's folder
    _load_feature_extractor = None
    _load_tokenizer = False
    _load_image_processor = False
    _load_processor = False

    def _extractor(self, params: dict):
        return self.feature_extractor

    def preprocess(self, inputs, sampling_rate=None, lead_names=None, window_stride=None, **params):
        record = _as_record(inputs, sampling_rate, lead_names)
        fe = self._extractor(params)
        prepared = fe.prepare(record)
        notes = list(prepared.notes) + ([fe.padding_note(prepared)] if fe.padding_note(prepared) else [])
        starts = fe.window_starts(prepared.num_samples, window_stride)
        for i, windows in enumerate(fe.iter_windows(prepared, batch_size=1, stride=window_stride)):
            yield {
                "input_values": torch.from_numpy(windows),
                "is_last": i == len(starts) - 1,
                "record_id": record.record_id,
                "notes": notes,
                **params,
            }

    @staticmethod
    def _results(labels, scores, notes, top_k=None) -> list[dict]:
        order = np.argsort(-np.asarray(scores), kind="stable")
        out = [{"label": labels[i], "score": float(scores[i])} for i in order]
        if top_k is not None:
            out = out[: int(top_k)]
        if notes:
            for item in out:
                item["notes"] = list(notes)
        return out


class ECGClassificationPipeline(_ECGChunkPipeline):
    """Classify ECG records with a task adapter (``adapter="cpsc2018"``) or a fully fine-tuned classifier.

    Call arguments: ``top_k`` (how many labels, default all, most probable first), ``threshold`` (a number in [0, 1]:
    return only the labels at or above it) or ``thresholds="calibrated"`` (the per-class thresholds stored with the
    adapter), ``adapter`` (switch to another loaded adapter), ``sampling_rate``/``lead_names`` (array inputs),
    ``window_stride``.
    """

    def __init__(self, model, feature_extractor=None, adapter: str | list[str] | None = None, **kwargs):
        model, extractors, default = _classifier_with_adapters(model, adapter)
        # tasks of a model object without a folder read with the feature extractor given
        extractors = {task: fe or feature_extractor for task, fe in extractors.items()}
        if None in extractors.values():
            raise ValueError(_NO_FEATURE_EXTRACTOR)
        self._task_extractors = extractors
        self._default_adapter = default
        super().__init__(model=model, feature_extractor=feature_extractor or extractors.get(default), **kwargs)

    def _sanitize_parameters(
        self,
        top_k=None,
        threshold=None,
        thresholds=None,
        adapter=None,
        sampling_rate=None,
        lead_names=None,
        window_stride=None,
        **kwargs,
    ):
        pre = {"sampling_rate": sampling_rate, "lead_names": lead_names, "window_stride": window_stride}
        if adapter is not None:
            if adapter not in self._task_extractors:
                raise InvalidArgumentError(
                    f"adapter {adapter!r} is not loaded; this pipeline has {sorted(self._task_extractors)}."
                )
            pre["adapter"] = adapter
        post = {"top_k": top_k}
        if threshold is not None:
            post["threshold"] = check_threshold(threshold)
        if thresholds is not None:
            if thresholds != "calibrated":
                raise InvalidArgumentError(
                    "thresholds must be 'calibrated' (the adapter's stored per-class thresholds)."
                )
            post["thresholds"] = thresholds
        return pre, {}, post

    def _extractor(self, params: dict):
        task = params.get("adapter") or self._default_adapter
        return self._task_extractors.get(task, self.feature_extractor)

    def _forward(self, model_inputs):
        task = model_inputs.pop("adapter", None) or self._default_adapter
        if task is not None and hasattr(self.model, "set_adapter"):
            self.model.set_adapter(task)
        x = model_inputs.pop("input_values")
        logits = self.model(input_values=x).logits
        return {"logits": logits, "adapter": [task] * len(x), **model_inputs}

    def postprocess(self, model_outputs, top_k=None, threshold=None, thresholds=None):
        logits = torch.cat([out["logits"] for out in model_outputs]).float()
        first = model_outputs[0]
        task = first["adapter"][0] if isinstance(first["adapter"], list) else first["adapter"]
        notes = first["notes"][0] if first["notes"] and isinstance(first["notes"][0], list) else first["notes"]
        config = self.model.peft_config[task] if task is not None else None
        if getattr(config, "labels", None) is None:  # a LoRA adapter or a fine-tuned classifier: the model's own head
            config = None
        labels = (
            list(config.labels)
            if config is not None
            else [self.model.config.id2label[i] for i in range(logits.shape[-1])]
        )
        problem = config.problem_type if config is not None else self.model.config.problem_type
        multi = problem == "multi_label_classification"
        scores = (torch.sigmoid(logits) if multi else torch.softmax(logits, -1)).mean(0).numpy()
        results = self._results(labels, scores, notes, top_k=None)
        if threshold is not None or thresholds is not None:
            if threshold is not None:
                cut = [threshold] * len(labels)
            else:
                stored = getattr(config, "thresholds", None)
                cut = [float(t) for t in stored] if stored else [0.5] * len(labels)
            decided, fallback = decide(task or "", labels, scores, multi, cut)
            results = [r for r in results if r["label"] in decided]
            if fallback:
                for r in results:
                    r["notes"] = r.get("notes", []) + fallback
        return results[: int(top_k)] if top_k is not None else results


_NO_FEATURE_EXTRACTOR = (
    "the pipeline needs the model's feature extractor: load the model from a folder or repo id with a "
    "preprocessor_config.json, or pass feature_extractor=ECGFeatureExtractor.from_pretrained('<model folder or id>')."
)


def _classifier_with_adapters(model, adapter):
    """A classification model with its task adapter(s) loaded, and a feature extractor per task."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from .models.encoders import ECGPreTrainedModel
    from .safety import load_task_adapter

    if isinstance(model, PeftModel):
        tasks = list(model.peft_config)
        folder = _repo_folder(model.get_base_model())
        extractors = {t: load_feature_extractor(folder, t) if folder else None for t in tasks}
        return model, extractors, adapter if isinstance(adapter, str) else model.active_adapter
    folder = _repo_folder(model)
    adapters = [adapter] if isinstance(adapter, str) else list(adapter or [])
    if not adapters:
        if not hasattr(model, "head") and folder is not None and _is_classifier_repo(folder):
            model = AutoModelForSequenceClassification.from_pretrained(folder)  # a fully fine-tuned classifier
        if hasattr(model, "head"):
            return model.eval(), {None: load_feature_extractor(folder) if folder else None}, None
        raise InvalidArgumentError(
            "ecg-classification needs a task adapter: pipeline('ecg-classification', model=..., adapter='<task>'), "
            "or a fine-tuned classification model."
        )
    if folder is None:
        raise InvalidArgumentError(
            "The pipeline needs the model's folder or repo id to load the adapter from; pass model='<id or folder>'."
        )
    if not isinstance(model, ECGPreTrainedModel) or hasattr(model, "head"):
        base = model
    else:  # a bare encoder: give it a classification wrapper whose head each task adapter replaces
        base = AutoModelForSequenceClassification.from_config(model.config)
        base.encoder = model
        base.config._name_or_path = model.config._name_or_path
    peft_model = base
    for task in adapters:
        if not (folder / task / "adapter_config.json").is_file():
            from .inference import available_tasks

            raise InvalidArgumentError(
                f"{model.name_or_path} has no adapter {task!r}; it has {available_tasks(folder) or 'none'}."
            )
        peft_model = load_task_adapter(peft_model, folder / task, task)
    peft_model.set_adapter(adapters[0])
    return peft_model.eval(), {t: load_feature_extractor(folder, t) for t in adapters}, adapters[0]


def _is_classifier_repo(folder: Path) -> bool:
    import json

    try:
        architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return False
    return any(a.endswith("ForSequenceClassification") for a in architectures)


class ZeroShotECGClassificationPipeline(_ECGChunkPipeline):
    """Zero-shot classification with the CETP dual encoder: each candidate label (a clinical phrase, put into
    ``hypothesis_template``) is embedded by the text tower and compared with the record's ECG embedding (the average
    over its windows); scores are the softmax over the candidates of the temperature-scaled cosine similarities, as in
    CLIP.
    """

    def __init__(self, model, feature_extractor=None, tokenizer=None, **kwargs):
        from transformers import AutoTokenizer

        from .models.cetp import CETPModel

        if not isinstance(model, CETPModel):
            folder = _repo_folder(model)
            if folder is None or not (folder / CETP_SUBFOLDER / "config.json").is_file():
                raise InvalidArgumentError(
                    f"{getattr(model, 'name_or_path', model)!r} has no CETP dual encoder (a '{CETP_SUBFOLDER}/' "
                    "subfolder); zero-shot classification needs one (examples/pretrain_cetp.py writes it)."
                )
            model = CETPModel.from_pretrained(folder / CETP_SUBFOLDER)
            feature_extractor = feature_extractor or load_feature_extractor(folder)
        elif feature_extractor is None:  # a CETP model object: its folder's, else the repo root's (one level up)
            folder = _repo_folder(model)
            candidates = [folder, folder.parent] if folder else []
            found = [f for f in candidates if (f / "preprocessor_config.json").is_file()]
            if not found:
                raise ValueError(_NO_FEATURE_EXTRACTOR)
            feature_extractor = load_feature_extractor(found[0])
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model.text_model_path())
        self._text_cache: dict[tuple, torch.Tensor] = {}
        super().__init__(model=model.eval(), feature_extractor=feature_extractor, tokenizer=tokenizer, **kwargs)

    def _sanitize_parameters(
        self,
        candidate_labels=None,
        hypothesis_template=None,
        sampling_rate=None,
        lead_names=None,
        window_stride=None,
        top_k=None,
        **kwargs,
    ):
        pre = {"sampling_rate": sampling_rate, "lead_names": lead_names, "window_stride": window_stride}
        post = {}
        if candidate_labels is not None:
            if isinstance(candidate_labels, str):
                candidate_labels = [c.strip() for c in candidate_labels.split(",") if c.strip()]
            if len(candidate_labels) < 2:
                raise InvalidArgumentError("zero-shot classification needs at least two candidate_labels.")
            post["candidate_labels"] = list(candidate_labels)
        post["hypothesis_template"] = hypothesis_template or "{}"
        post["top_k"] = top_k
        return pre, {}, post

    def _forward(self, model_inputs):
        x = model_inputs.pop("input_values")
        return {"ecg_embeds": self.model.get_ecg_features(x), **model_inputs}

    @torch.no_grad()
    def _text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        key = tuple(prompts)
        if key not in self._text_cache:
            self._text_cache[key] = self.model.encode_texts(prompts, self.tokenizer)
        return self._text_cache[key]

    @torch.no_grad()  # transformers runs only _forward without gradients; logit_scale is a Parameter
    def postprocess(self, model_outputs, candidate_labels=None, hypothesis_template="{}", top_k=None):
        if not candidate_labels:
            raise InvalidArgumentError("pass candidate_labels=[...] (at least two clinical phrases).")
        ecg = torch.nn.functional.normalize(torch.cat([o["ecg_embeds"] for o in model_outputs]).mean(0), dim=-1)
        text = self._text_embeddings([hypothesis_template.format(c) for c in candidate_labels])
        logits = self.model.logit_scale.exp().clamp(max=self.model.config.max_logit_scale) * text @ ecg
        scores = torch.softmax(logits, -1).numpy()
        first = model_outputs[0]
        notes = first["notes"][0] if first["notes"] and isinstance(first["notes"][0], list) else first["notes"]
        return self._results(list(candidate_labels), scores, notes, top_k=top_k)


def register_pipelines() -> None:
    """Register both pipelines with transformers (done when this module is imported, which ``import tac_ecg_hf``
    arranges as soon as ``transformers.pipelines`` is imported)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    for task, cls in (
        ("ecg-classification", ECGClassificationPipeline),
        ("zero-shot-ecg-classification", ZeroShotECGClassificationPipeline),
    ):
        if task not in PIPELINE_REGISTRY.supported_tasks:
            PIPELINE_REGISTRY.register_pipeline(
                task,
                pipeline_class=cls,
                pt_model=AutoModel,
                default={"pt": ("tac-ecg/xresnet1d101-cetp", "main")},
                type="multimodal",
            )


register_pipelines()
