"""Classify ECG records with a pre-trained encoder and its per-task LRC-Adapters.

    >>> from tac_ecg_hf.inference import ECGTaskClassifier
    >>> clf = ECGTaskClassifier.from_pretrained("tac-ecg/xresnet1d101-cetp")
    >>> clf.predict("A0001.hea", task="cpsc2018").probabilities

A model repository (bundled in the package, a local directory, or on the Hub) holds the encoder
(``config.json`` + ``model.safetensors``) and one adapter per task under ``adapters/<task>/``.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .tasks import TASKS, get_task

DEFAULT_MODEL = "tac-ecg/xresnet1d101-cetp"
#: short names accepted wherever a model id is
MODEL_ALIASES = {
    "xresnet1d101": "tac-ecg/xresnet1d101-cetp",
    "xresnet": "tac-ecg/xresnet1d101-cetp",
    "resnet1d": "tac-ecg/resnet-cetp",
    "resnet": "tac-ecg/resnet-cetp",
}
ADAPTERS_DIR = "adapters"


def resolve_model(repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """Local directory, else the checkpoint bundled with the package (when no revision is asked for and
    ``TAC_ECG_PREFER_HUB`` is unset), else the Hub or its cache; a bundled copy also stands in when the Hub is
    unreachable. Errors are ``HubAccessError`` with a message saying what to do."""
    from .hub import resolve_repo

    repo_id = MODEL_ALIASES.get(str(repo_id), str(repo_id))
    prefer_bundled = revision is None and not os.environ.get("TAC_ECG_PREFER_HUB")
    return Path(resolve_repo(repo_id, revision=revision, prefer_bundled=prefer_bundled))


def available_tasks(model_path: str | os.PathLike) -> list[str]:
    root = Path(model_path) / ADAPTERS_DIR
    if not root.is_dir():
        return []
    # hidden folders are never tasks (e.g. a temporary folder of an interrupted atomic save)
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / "adapter_config.json").is_file())


def reference_labels(record) -> list[str]:
    """Labels stored with a record: the reader's, else a WFDB header's ``#Dx:`` comment."""
    if record.labels:
        return list(record.labels)
    dx = (record.meta or {}).get("header_info", {}).get("Dx", "")
    return [d.strip() for d in str(dx).split(",") if d.strip()]


@dataclass
class Prediction:
    task: str
    labels: list[str]
    probabilities: np.ndarray
    decision: list[str]
    multi_label: bool
    record_id: str = ""
    num_windows: int = 1
    reference: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "record": self.record_id,
            "task": self.task,
            "probabilities": {label: round(float(p), 4) for label, p in zip(self.labels, self.probabilities)},
            "decision": self.decision,
            "windows": self.num_windows,
            "reference": self.reference,
        }

    def format(self) -> str:
        lines = [f"record {self.record_id}  task {self.task}  ({self.num_windows} window(s) averaged)"]
        width = max(len(label) for label in self.labels)
        description = get_task(self.task).label_descriptions if self.task in TASKS else {}
        for label, p in sorted(zip(self.labels, self.probabilities), key=lambda t: -t[1]):
            mark = "*" if label in self.decision else " "
            bar = "#" * int(round(float(p) * 30))
            lines.append(f" {mark} {label:<{width}}  {p:6.3f}  {bar:<30} {description.get(label, '')}")
        kind = "labels above threshold" if self.multi_label else "most probable class"
        lines.append(f"decision ({kind}): {', '.join(self.decision) if self.decision else 'none'}")
        if self.reference:
            lines.append(f"reference labels in the file: {', '.join(self.reference)}")
        return "\n".join(lines)


class ECGTaskClassifier:
    """A frozen encoder with one LRC-Adapter per task; ``predict(record, task)`` switches adapters by name."""

    def __init__(self, model, model_path: Path, tasks: list[str]):
        self.model = model.eval()
        self.model_path = Path(model_path)
        self.tasks = tasks

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike = DEFAULT_MODEL,
        tasks: list[str] | str | None = None,
        revision: str | None = None,
        allow_pickle: bool = False,
    ) -> "ECGTaskClassifier":
        """Load the encoder and the adapters of ``tasks`` (default: all) from a model id or folder.

        Weights are read from safetensors files only: a pickle-only encoder (``pytorch_model.bin``) or adapter
        (``adapter_model.bin``) raises :class:`~tac_ecg_hf.safety.UnsafeCheckpointError` unless ``allow_pickle=True``.
        """
        from transformers import AutoModelForSequenceClassification

        from .safety import check_adapter_files, check_model_files, load_peft_adapter

        path = resolve_model(model, revision=revision)
        found = available_tasks(path)
        if isinstance(tasks, str):
            tasks = [tasks]
        tasks = list(tasks) if tasks else found
        missing = [t for t in tasks if t not in found]
        if missing or not tasks:
            raise ValueError(
                f"Model {str(model)!r} has no adapter for task(s) {missing or tasks}; it has {found or 'none'}. "
                "Choose one of those, or train one with examples/finetune.py --method lrc."
            )
        use_safetensors = check_model_files(path, allow_pickle=allow_pickle)
        for task in tasks:  # refuse before loading anything
            check_adapter_files(path / ADAPTERS_DIR / task, allow_pickle=allow_pickle)
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the encoder checkpoint has no head: the task heads come with the adapters
        try:
            kwargs = {} if use_safetensors is None else {"use_safetensors": use_safetensors}
            base = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32, **kwargs)
        finally:
            hf_logging.set_verbosity(verbosity)
        peft_model = base
        for task in tasks:
            peft_model = load_peft_adapter(peft_model, path / ADAPTERS_DIR / task, task, allow_pickle=allow_pickle)
        return cls(peft_model, path, tasks)

    def adapter_config(self, task: str):
        return self.model.peft_config[task]

    def preprocessor(self, task: str):
        from .data.preprocessing import ECGPreprocessor

        from .training import task_preprocessing

        defaults = task_preprocessing(task, self.model.base_model.model.config)
        return ECGPreprocessor.from_dict({**defaults, **(self.adapter_config(task).preprocessing or {})})

    @torch.no_grad()
    def predict(
        self,
        record,
        task: str,
        sampling_rate: float | None = None,
        lead_names: list[str] | None = None,
        threshold: float = 0.5,
        window_stride: int | None = None,
    ) -> Prediction:
        """Classify one record: an ``ECGRecord``, a file path (WFDB .hea, .mat, .npy, .csv) or an array
        (leads, samples) with ``sampling_rate`` and ``lead_names``. Long records are cut into windows of the
        encoder's length and the probabilities averaged."""
        from .data import ECGRecord, read_record

        if task not in self.tasks:
            raise ValueError(f"No adapter for task {task!r}; this model has {self.tasks}.")
        if isinstance(record, (str, os.PathLike)):
            record = read_record(record, lead_names=lead_names, sampling_rate=sampling_rate)
        elif isinstance(record, np.ndarray):
            if sampling_rate is None or lead_names is None:
                raise ValueError("An array record needs sampling_rate=... and lead_names=[...] (one name per row).")
            record = ECGRecord(
                signal=np.asarray(record, dtype=np.float32),
                sampling_rate=float(sampling_rate),
                lead_names=tuple(lead_names),
                record_id="<array>",
            )
        spec = TASKS.get(task)
        if len(record.lead_names) == 1 and spec is not None and len(spec.source_leads) == 1:
            from .data.preprocessing import canonical_lead_name

            name = canonical_lead_name(record.lead_names[0], single_lead=True)
            if name != record.lead_names[0]:
                warnings.warn(
                    f"record {record.record_id}: single lead {record.lead_names[0]!r} read as lead {name} for task {task}",
                    UserWarning,
                    stacklevel=2,
                )
                record = dataclasses.replace(record, lead_names=(name,))
        preprocessor = self.preprocessor(task)
        windows = preprocessor.windows(record, stride=window_stride)
        batch = torch.from_numpy(windows)
        self.model.set_adapter(task)
        logits = self.model(input_values=batch).logits
        config = self.adapter_config(task)
        multi_label = config.problem_type == "multi_label_classification"
        probs = (torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)).mean(0).numpy()
        labels = list(config.labels)
        if multi_label:
            decision = [label for label, p in zip(labels, probs) if p >= threshold]
        else:
            decision = [labels[int(np.argmax(probs))]]
        return Prediction(
            task=task,
            labels=labels,
            probabilities=probs,
            decision=decision,
            multi_label=multi_label,
            record_id=record.record_id,
            num_windows=len(windows),
            reference=reference_labels(record),
        )
