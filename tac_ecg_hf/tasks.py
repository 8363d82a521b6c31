"""Downstream task definitions shared by data loaders, adapters, metrics and the CLI.

A task fixes the label set, the problem type (multi-label with BCE or single-label with CE)
and the signal format that the shared frozen encoder expects (leads, sampling rate, length).
"""

from __future__ import annotations

from dataclasses import dataclass, field

STANDARD_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

#: Sampling rate (Hz) and window (samples) every bundled encoder is trained with (PTB-XL 100 Hz, 10 s).
DEFAULT_SAMPLING_RATE = 100
DEFAULT_NUM_SAMPLES = 1000


@dataclass(frozen=True)
class TaskSpec:
    name: str
    labels: tuple[str, ...]
    problem_type: str  # "multi_label_classification" | "single_label_classification"
    description: str
    #: leads the source recordings carry; missing standard leads are zero-filled for the 12-lead encoder
    source_leads: tuple[str, ...] = STANDARD_LEADS
    source_sampling_rate: int = 500
    label_descriptions: dict = field(default_factory=dict)
    #: multi-label tasks whose classes cover every record (each record has at least one): a prediction then never
    #: decides nothing, it falls back to the most probable class
    exhaustive: bool = False

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def multi_label(self) -> bool:
        return self.problem_type == "multi_label_classification"

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}


TASKS: dict[str, TaskSpec] = {
    "ptbxl-super": TaskSpec(
        name="ptbxl-super",
        labels=("NORM", "MI", "STTC", "CD", "HYP"),
        problem_type="multi_label_classification",
        description="PTB-XL diagnostic superclasses (multi-label)",
        source_sampling_rate=100,
        exhaustive=True,
        label_descriptions={
            "NORM": "normal ECG",
            "MI": "myocardial infarction",
            "STTC": "ST/T change",
            "CD": "conduction disturbance",
            "HYP": "hypertrophy",
        },
    ),
    "cpsc2018": TaskSpec(
        name="cpsc2018",
        labels=("Normal", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"),
        problem_type="multi_label_classification",
        description="CPSC2018 nine rhythm/morphology classes (multi-label: some records carry two)",
        source_sampling_rate=500,
        exhaustive=True,
        label_descriptions={
            "Normal": "normal sinus rhythm",
            "AF": "atrial fibrillation",
            "I-AVB": "first-degree atrioventricular block",
            "LBBB": "left bundle branch block",
            "RBBB": "right bundle branch block",
            "PAC": "premature atrial contraction",
            "PVC": "premature ventricular contraction",
            "STD": "ST-segment depression",
            "STE": "ST-segment elevation",
        },
    ),
    "cinc2017": TaskSpec(
        name="cinc2017",
        labels=("N", "A", "O", "~"),
        problem_type="single_label_classification",
        description="PhysioNet/CinC 2017 single-lead AF classification: Normal, AF, Other rhythm, Noisy",
        source_leads=("I",),
        source_sampling_rate=300,
        label_descriptions={
            "N": "normal sinus rhythm",
            "A": "atrial fibrillation",
            "O": "other rhythm",
            "~": "too noisy to classify",
        },
    ),
    "chapman": TaskSpec(
        name="chapman",
        labels=("SB", "AFIB", "GSVT", "SR"),
        problem_type="single_label_classification",
        description="Chapman-Shaoxing rhythm merged into four groups",
        source_sampling_rate=500,
        label_descriptions={
            "SB": "sinus bradycardia",
            "AFIB": "atrial fibrillation or flutter",
            "GSVT": "supraventricular tachycardia",
            "SR": "sinus rhythm or sinus irregularity",
        },
    ),
}


class UnknownTaskError(KeyError, ValueError):
    """A task name that is not one of :data:`TASKS` (a failed lookup, and a bad argument). Defined here, not in
    ``tac_ecg_hf.errors``: the metrics module loads this file on its own, without the package."""


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise UnknownTaskError(f"Unknown task {name!r}. Known tasks: {', '.join(TASKS)}.") from None
