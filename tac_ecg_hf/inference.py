"""Classify ECG records with a pre-trained encoder and its per-task LRC-Adapters: the package's Python API.

    >>> from tac_ecg_hf.inference import ECGTaskClassifier
    >>> clf = ECGTaskClassifier.from_pretrained("tac-ecg/xresnet1d101-cetp")
    >>> clf.predict("A0001.hea", task="cpsc2018").decision

A model repository (bundled in the package, a local folder, the Hub cache or the Hub) is laid out the way PEFT
publishes it: the encoder and its ``preprocessor_config.json`` at the root, each task adapter in a subfolder named by
its task (``cpsc2018/adapter_config.json`` + ``adapter_model.safetensors``, and a ``preprocessor_config.json`` where
the task reads its input differently, e.g. lead I only). The feature extractor saved with the model is the only
definition of preprocessing; long records are streamed through the model in bounded batches of windows whose
probabilities are averaged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InvalidArgumentError
from .tasks import TASKS, get_task

DEFAULT_MODEL = "tac-ecg/xresnet1d101-cetp"
#: short names accepted wherever a model id is
MODEL_ALIASES = {
    "xresnet1d101": "tac-ecg/xresnet1d101-cetp",
    "xresnet": "tac-ecg/xresnet1d101-cetp",
    "resnet1d": "tac-ecg/resnet-cetp",
    "resnet": "tac-ecg/resnet-cetp",
}
#: the dual encoder (zero-shot) lives in this subfolder of a model repository
CETP_SUBFOLDER = "cetp"
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def resolve_model(repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """Local folder of a model repository: a local directory, the checkpoint bundled with the package (no revision
    asked for and ``TAC_ECG_PREFER_HUB`` unset), else the Hub or its cache (see
    :func:`tac_ecg_hf.hub.resolve_repo`)."""
    from .hub import resolve_repo

    return Path(resolve_repo(MODEL_ALIASES.get(str(repo_id), str(repo_id)), revision=revision))


def available_tasks(model_path: str | os.PathLike) -> list[str]:
    """Task adapters of a local model folder: its direct subfolders holding an ``adapter_config.json``."""
    from .hub import task_adapters_in

    return task_adapters_in(model_path)


def preprocessor_folder(model_path: str | os.PathLike, task: str | None = None) -> Path | None:
    """The folder whose ``preprocessor_config.json`` a task reads its input with: the task's own where it has one,
    else the model's; None where neither has one."""
    root = Path(model_path)
    for folder in ([root / task] if task else []) + [root]:
        if (folder / "preprocessor_config.json").is_file():
            return folder
    return None


def load_feature_extractor(model_path: str | os.PathLike, task: str | None = None):
    """The feature extractor of a model folder, or of one of its tasks (its own ``preprocessor_config.json`` when it
    has one, else the model's)."""
    from .data.feature_extraction_ecg import ECGFeatureExtractor
    from .safety import read_json_object

    root = Path(model_path)
    folder = preprocessor_folder(root, task)
    if folder is not None:
        read_json_object(folder / "preprocessor_config.json", what="feature extractor settings")
        return ECGFeatureExtractor.from_pretrained(folder)
    raise FileNotFoundError(
        f"{root} has no preprocessor_config.json: the feature extractor (sampling rate, leads, band-pass, window) "
        "must be saved with the model. Save one with ECGFeatureExtractor(...).save_pretrained(folder)."
    )


def reference_labels(record) -> list[str]:
    """Labels stored with a record: the reader's, else a WFDB header's ``#Dx:`` comment."""
    if getattr(record, "labels", None):
        return list(record.labels)
    dx = (getattr(record, "meta", None) or {}).get("header_info", {}).get("Dx", "")
    return [d.strip() for d in str(dx).split(",") if d.strip()]


def check_threshold(threshold: Any) -> float:
    """A decision threshold must be a number in [0, 1] (NaN, negative or above-one values are refused)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or not 0 <= threshold <= 1:
        raise InvalidArgumentError(f"threshold must be a number in [0, 1], got {threshold!r}.")
    return float(threshold)


def check_batch_size(batch_size: Any) -> int:
    """A batch size must be a positive integer (windows per forward pass)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


@dataclass
class Prediction:
    """One record's prediction for one task.

    ``probabilities`` are the window-averaged class probabilities; ``decision`` the labels decided: for multi-label
    tasks those at or above their threshold (the adapter's calibrated per-class ``thresholds`` unless one is given),
    for single-label tasks the most probable class. ``notes`` say what the preprocessing did that a reader should know
    (padding, resampling, leads ignored or derived) and when a decision fell back to the most probable class.
    """

    task: str
    labels: list[str]
    probabilities: np.ndarray
    decision: list[str]
    multi_label: bool
    record_id: str = ""
    num_windows: int = 1
    reference: list[str] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "record": self.record_id,
            "task": self.task,
            "probabilities": {label: round(float(p), 4) for label, p in zip(self.labels, self.probabilities)},
            "decision": self.decision,
            "thresholds": {label: round(float(t), 4) for label, t in zip(self.labels, self.thresholds)} or None,
            "windows": self.num_windows,
            "reference": self.reference,
            "notes": self.notes,
        }

    def format(self) -> str:
        lines = [f"record {self.record_id}  task {self.task}  ({self.num_windows} window(s) averaged)"]
        width = max(len(label) for label in self.labels)
        description = get_task(self.task).label_descriptions if self.task in TASKS else {}
        for label, p in sorted(zip(self.labels, self.probabilities), key=lambda t: -t[1]):
            mark = "*" if label in self.decision else " "
            bar = "#" * int(round(float(p) * 30))
            lines.append(f" {mark} {label:<{width}}  {p:6.3f}  {bar:<30} {description.get(label, '')}")
        kind = "labels at or above their threshold" if self.multi_label else "most probable class"
        lines.append(f"decision ({kind}): {', '.join(self.decision) if self.decision else 'none'}")
        if self.reference:
            lines.append(f"reference labels in the file: {', '.join(self.reference)}")
        return "\n".join(lines)


def decide(
    task: str, labels: Sequence[str], probs: np.ndarray, multi_label: bool, thresholds: Sequence[float]
) -> tuple[list[str], list[str]]:
    """The decided labels and a note when the decision fell back to the most probable class: a multi-label task whose
    classes cover every record (``TaskSpec.exhaustive``, e.g. cpsc2018) never returns an empty decision."""
    if not multi_label:
        return [labels[int(np.argmax(probs))]], []
    decision = [label for label, p, t in zip(labels, probs, thresholds) if p >= t]
    spec = TASKS.get(task)
    if not decision and spec is not None and spec.exhaustive:
        best = labels[int(np.argmax(probs))]
        return [best], [
            f"no class reached its threshold; decided the most probable class {best} (every {task} record has one)"
        ]
    return decision, []


@dataclass
class TaskHead:
    """What a prediction needs to know about a task's head when its adapter is not an LRC-Adapter (whose
    ``LRCConfig`` carries the same fields): a PEFT LoRA baseline, or a fully fine-tuned classifier."""

    labels: list[str]
    problem_type: str
    thresholds: list[float] | None = None


def _stored_thresholds(value: Any, labels: Sequence[str], where: Path) -> list[float] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != len(labels)
        or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in value)
    ):
        from .safety import CheckpointFileError

        raise CheckpointFileError(
            f"{where}: thresholds must be one probability in [0, 1] per label, got {repr(value)[:80]}."
        )
    return [float(t) for t in value]


def classifier_tasks(model_path: str | os.PathLike) -> list[str]:
    """The tasks a fully fine-tuned classifier at the root of a model folder answers (``examples/finetune.py --method
    full / linear / scratch``): those whose labels are the classifier's ``id2label``."""
    from .safety import read_json_object

    path = Path(model_path) / "config.json"
    if not path.is_file():
        return []
    config = read_json_object(path, what="model settings")
    architectures = config.get("architectures") or []
    id2label = config.get("id2label")
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures) or not isinstance(id2label, dict):
        return []
    labels = [id2label.get(str(i)) for i in range(len(id2label))]
    return [name for name, spec in TASKS.items() if list(spec.labels) == labels]


class ECGTaskClassifier:
    """A frozen encoder with one adapter per task (LRC-Adapters; PEFT LoRA baselines), or a fully fine-tuned classifier
    for its one task; ``predict(record, task)`` switches adapters by name."""

    def __init__(
        self,
        model,
        model_path: str | os.PathLike,
        tasks: list[str],
        feature_extractors: dict | None = None,
        heads: dict | None = None,
    ):
        self.model = model.eval()
        self.model_path = Path(model_path)
        self.tasks = list(tasks)
        self._feature_extractors = dict(feature_extractors or {})
        self._heads = dict(heads) if heads is not None else {task: model.peft_config[task] for task in self.tasks}
        self.dtype = torch.float32
        self._forward = self.model
        self._switched_to: str | None = None  # the task logits() last switched the adapters to

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike = DEFAULT_MODEL,
        tasks: list[str] | str | None = None,
        revision: str | None = None,
        allow_pickle: bool = False,
    ) -> ECGTaskClassifier:
        """Load the encoder and the adapters of ``tasks`` (default: all) from a model id or folder; a folder without
        adapters that holds a fully fine-tuned classifier (``examples/finetune.py --method full / linear / scratch``)
        answers the one task its labels are.

        Weights are read from safetensors files only: a pickle-only encoder (``pytorch_model.bin``) or adapter
        (``adapter_model.bin``) raises :class:`~tac_ecg_hf.safety.UnsafeCheckpointError` unless ``allow_pickle=True``.
        """
        from transformers.utils import logging as hf_logging

        from .adapters.lrc import LRCConfig
        from .safety import (
            AdapterConfigError,
            check_adapter_files,
            check_model_files,
            load_encoder,
            load_task_adapter,
            read_json_object,
        )

        path = resolve_model(model, revision=revision)
        found = available_tasks(path)
        own = [] if found else classifier_tasks(path)  # a fully fine-tuned classifier, no adapters
        tasks = [tasks] if isinstance(tasks, str) else list(tasks or found or own)
        missing = [t for t in tasks if t not in found and t not in own]
        if missing or not tasks:
            raise InvalidArgumentError(
                f"Model {str(model)!r} has no adapter for task(s) {missing or tasks}; "
                f"it has {found or own or 'none'}. "
                "Choose one of those, or train one with examples/finetune.py --method lrc."
            )
        adapter_tasks = tasks if found else []
        check_model_files(path, allow_pickle=allow_pickle)
        for task in adapter_tasks:  # refuse before loading anything
            check_adapter_files(path / task, allow_pickle=allow_pickle)
        extractors = {task: load_feature_extractor(path, task) for task in tasks}
        # Adapters other than LRC's (a PEFT LoRA baseline, modules_to_save=["head"]) train the classifier's own head:
        # build it with their task's label count. LRC adapters bring their own heads.
        raw = {
            task: read_json_object(path / task / "adapter_config.json", AdapterConfigError, "adapter settings")
            for task in adapter_tasks
        }
        plain = [task for task in raw if raw[task].get("peft_type") != "LRC_ADAPTER"]
        counts = {get_task(task).num_labels for task in plain}
        if len(counts) > 1:
            raise InvalidArgumentError(
                f"the adapters of {plain} train the model's own head for different label counts; load them one at "
                "a time."
            )
        head_kwargs = {"num_labels": counts.pop()} if counts else {}
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the encoder checkpoint has no head: the task heads come with the adapters
        try:
            peft_model = load_encoder(path, allow_pickle=allow_pickle, **head_kwargs)
        finally:
            hf_logging.set_verbosity(verbosity)
        heads = {}
        if not adapter_tasks:
            params = read_json_object(path / "config.json", what="model settings").get("task_specific_params")
            params = params.get(tasks[0]) if isinstance(params, dict) else None
            params = params if isinstance(params, dict) else {}
            labels = list(get_task(tasks[0]).labels)
            problem = peft_model.config.problem_type or get_task(tasks[0]).problem_type
            heads[tasks[0]] = TaskHead(labels, problem, _stored_thresholds(params.get("thresholds"), labels, path))
            return cls(peft_model, path, tasks[:1], extractors, heads)
        for task in tasks:
            peft_model = load_task_adapter(peft_model, path / task, task, allow_pickle=allow_pickle)
            config = peft_model.peft_config[task]
            if isinstance(config, LRCConfig):
                heads[task] = config
            else:
                spec = get_task(task)
                thresholds = _stored_thresholds(raw[task].get("thresholds"), spec.labels, path / task)
                heads[task] = TaskHead(list(spec.labels), spec.problem_type, thresholds)
        return cls(peft_model, path, tasks, extractors, heads)

    # -- settings ----------------------------------------------------------------------------------------------------
    def adapter_config(self, task: str):
        """The task's head settings: ``labels``, ``problem_type``, ``thresholds`` (the ``LRCConfig`` of an LRC-Adapter,
        else a :class:`TaskHead`)."""
        self._check_task(task)
        return self._heads[task]

    def set_thresholds(self, task: str, thresholds: Sequence[float] | None) -> None:
        """Use ``thresholds`` (one per class, in [0, 1]) for ``task``'s decisions from now on (not saved: training
        stores calibrated ones with the model, see ``training.set_thresholds``)."""
        head = self.adapter_config(task)
        values = None if thresholds is None else [check_threshold(t) for t in thresholds]
        if values is not None and len(values) != len(head.labels):
            raise InvalidArgumentError(
                f"{task} has {len(head.labels)} labels but {len(values)} thresholds were given."
            )
        head.thresholds = values

    def feature_extractor(self, task: str):
        """The feature extractor ``task`` reads its input with."""
        self._check_task(task)
        return self._feature_extractors[task]

    def thresholds(self, task: str) -> list[float]:
        """Per-class decision thresholds stored with the adapter (calibrated on held-out data), else 0.5 each."""
        config = self.adapter_config(task)
        stored = getattr(config, "thresholds", None)
        return [float(t) for t in stored] if stored else [0.5] * len(config.labels)

    def set_precision(self, dtype: str | torch.dtype = "fp32", compile: bool = False) -> ECGTaskClassifier:
        """Run the model in ``"fp32"`` or ``"bf16"`` (CPU autocast: the AVX-512 BF16/AMX units), optionally through
        ``torch.compile`` (30-50 s of compilation per shape, so it pays for bulk runs only)."""
        self.dtype = DTYPES.get(dtype) if isinstance(dtype, str) else dtype
        if self.dtype not in (torch.float32, torch.bfloat16):
            raise InvalidArgumentError(f"dtype must be fp32 or bf16, got {dtype!r}.")
        self._forward = torch.compile(self.model, dynamic=False) if compile else self.model
        return self

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise InvalidArgumentError(f"No adapter for task {task!r}; this model has {self.tasks}.")

    # -- prediction --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, input_values: np.ndarray | torch.Tensor, task: str) -> torch.Tensor:
        """Float32 logits of a batch of windows ``(n, leads, samples)`` for ``task``."""
        self._check_task(task)
        if task in getattr(self.model, "peft_config", {}):  # a fully fine-tuned classifier has no adapters to switch
            # PEFT's set_adapter walks every module (6-11 ms a call for xresnet1d101, up to 6% of a compiled bf16
            # batch of 64 windows): skipped where this classifier switched to ``task`` last and it is still active
            active = getattr(self.model, "active_adapter", None)
            if not (self._switched_to == task and active == task):
                self.model.set_adapter(task)
                self._switched_to = task
        x = torch.as_tensor(input_values, dtype=torch.float32)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.dtype == torch.bfloat16 else nullcontext()
        with autocast:
            return self._forward(input_values=x).logits.float()

    def probabilities(self, logits: torch.Tensor, task: str) -> np.ndarray:
        multi = self.adapter_config(task).problem_type == "multi_label_classification"
        return (torch.sigmoid(logits) if multi else torch.softmax(logits, -1)).numpy()

    def predict(
        self,
        record: Any,
        task: str,
        sampling_rate: float | None = None,
        lead_names: Sequence[str] | None = None,
        threshold: float | None = None,
        window_stride: int | None = None,
        batch_size: int = 64,
    ) -> Prediction:
        """Classify one record: an ``ECGRecord``, a file path (WFDB .hea, .mat, .npy, .csv) or a ``(leads, samples)``
        array, tensor or nested list with ``sampling_rate`` and ``lead_names``. Long records are cut into windows of
        the encoder's length, streamed through the model ``batch_size`` windows at a time, and their probabilities
        averaged. ``threshold`` (in [0, 1]) overrides the adapter's calibrated per-class thresholds."""
        self._check_task(task)
        if threshold is not None:
            check_threshold(threshold)
        check_batch_size(batch_size)
        record = as_record(record, sampling_rate=sampling_rate, lead_names=lead_names)
        fe = self.feature_extractor(task)
        prepared = fe.prepare(record)
        total, count = None, 0
        for windows in fe.iter_windows(prepared, batch_size=batch_size, stride=window_stride):
            probs = self.probabilities(self.logits(windows, task), task)
            total = probs.sum(0) if total is None else total + probs.sum(0)
            count += len(probs)
        notes = list(prepared.notes)
        pad = fe.padding_note(prepared)
        if pad:
            notes.append(pad)
        return self._prediction(task, record, total / count, count, threshold, notes)

    def predict_batch(
        self,
        records: Iterable[Any],
        task: str,
        threshold: float | None = None,
        batch_size: int = 64,
        window_stride: int | None = None,
    ) -> list[Prediction]:
        """Classify many records, packing the windows of several records into each forward pass of ``batch_size``."""
        self._check_task(task)
        if threshold is not None:
            check_threshold(threshold)
        check_batch_size(batch_size)
        fe = self.feature_extractor(task)
        records = [as_record(r) for r in records]
        prepared = [fe.prepare(r) for r in records]
        batches = WindowPacker(batch_size)
        sums: list[np.ndarray | None] = [None] * len(records)
        counts = [0] * len(records)

        def run(windows, owners):
            probs = self.probabilities(self.logits(windows, task), task)
            for i in np.unique(owners):
                chunk = probs[owners == i].sum(0)
                sums[i] = chunk if sums[i] is None else sums[i] + chunk
                counts[i] += int((owners == i).sum())

        for i, p in enumerate(prepared):
            for windows in fe.iter_windows(p, batch_size=batch_size, stride=window_stride):
                for full in batches.add(windows, i):
                    run(*full)
        for rest in batches.flush():
            run(*rest)
        out = []
        for i, (record, p) in enumerate(zip(records, prepared)):
            notes = list(p.notes) + ([fe.padding_note(p)] if fe.padding_note(p) else [])
            out.append(self._prediction(task, record, sums[i] / counts[i], counts[i], threshold, notes))
        return out

    def _prediction(self, task, record, probs, num_windows, threshold, notes) -> Prediction:
        config = self.adapter_config(task)
        multi_label = config.problem_type == "multi_label_classification"
        labels = list(config.labels)
        thresholds = [threshold] * len(labels) if threshold is not None else self.thresholds(task)
        decision, fallback = decide(task, labels, probs, multi_label, thresholds)
        return Prediction(
            task=task,
            labels=labels,
            probabilities=np.asarray(probs, dtype=np.float64),
            decision=decision,
            multi_label=multi_label,
            record_id=getattr(record, "record_id", ""),
            num_windows=num_windows,
            reference=reference_labels(record),
            thresholds=thresholds if multi_label else [],
            notes=notes + fallback,
        )


class WindowPacker:
    """Packs windows of several records into batches of exactly ``batch_size`` (the last one smaller), remembering
    which record each window came from."""

    def __init__(self, batch_size: int):
        self.batch_size = check_batch_size(batch_size)
        self._windows: list[np.ndarray] = []
        self._owners: list[np.ndarray] = []
        self._n = 0

    def add(self, windows: np.ndarray, owner: int):
        self._windows.append(windows)
        self._owners.append(np.full(len(windows), owner, dtype=np.int64))
        self._n += len(windows)
        while self._n >= self.batch_size:
            yield self._take(self.batch_size)

    def flush(self):
        if self._n:
            yield self._take(self._n)

    def _take(self, n: int):
        windows, owners = np.concatenate(self._windows), np.concatenate(self._owners)
        self._windows, self._owners = [windows[n:]], [owners[n:]]
        self._n = len(windows) - n
        return windows[:n], owners[:n]


def as_record(record: Any, sampling_rate: float | None = None, lead_names: Sequence[str] | None = None):
    """An ``ECGRecord`` from a record, a file path, or a ``(leads, samples)`` array / tensor / nested list."""
    from .data import ECGInputError, ECGRecord, read_record

    if isinstance(record, ECGRecord):
        if sampling_rate is not None or lead_names is not None:
            raise InvalidArgumentError("sampling_rate/lead_names come with an ECGRecord; do not pass them.")
        return record
    if isinstance(record, (str, os.PathLike)):
        return read_record(record, lead_names=lead_names, sampling_rate=sampling_rate)
    if isinstance(record, torch.Tensor):
        record = record.detach().cpu().numpy()
    if isinstance(record, (list, tuple)):
        try:
            record = np.asarray(record, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ECGInputError(f"A list record must be a numeric (leads, samples) nested list: {err}") from None
    if isinstance(record, np.ndarray):
        if sampling_rate is None or lead_names is None:
            raise ECGInputError("An array record needs sampling_rate=... and lead_names=[...] (one name per row).")
        if (
            isinstance(sampling_rate, bool)
            or not isinstance(sampling_rate, (int, float))
            or not math.isfinite(sampling_rate)
        ):
            raise ECGInputError(f"sampling_rate must be a number of Hz, got {sampling_rate!r}.")
        return ECGRecord(
            signal=record, sampling_rate=float(sampling_rate), lead_names=tuple(lead_names), record_id="<array>"
        )
    raise TypeError(
        f"Cannot classify a {type(record).__name__}: pass an ECGRecord, a file path, or a (leads, samples) numpy "
        "array, torch tensor or nested list with sampling_rate= and lead_names=."
    )
