"""One label space across ECG sources, in the manner of the PhysioNet/CinC 2020-2021 challenges' SNOMED mapping.

The table ``label_map.csv`` (shipped in the package; its header documents the rules) maps each code of a source
vocabulary to the classes of every task in :data:`~tac_ecg_hf.tasks.TASKS`::

    >>> map_labels("ptbxl_scp", ["NORM", "SR"], "chapman")
    ('SR',)
    >>> map_labels("snomed", ["164889003", "59118001"], "cpsc2018")
    ('AF', 'RBBB')
    >>> map_labels("snomed", ["164865005"], "cpsc2018") is None   # myocardial infarction: not a CPSC2018 class
    True

Vocabularies: ``ptbxl_scp`` (PTB-XL SCP codes), ``snomed`` (``#Dx`` SNOMED CT codes), ``cpsc2018`` (its
abbreviations), ``cinc2017`` (N/A/O/~), ``chapman_rhythm`` (Chapman-Shaoxing rhythm acronyms) and ``ludb_text``
(LUDB diagnosis statements). ``None`` means "no label for this task": no code of the record maps to a class (the
record says nothing about the task) or, for single-label tasks, its codes give conflicting classes.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from ..tasks import TASKS, get_task

__all__ = ["VOCABULARIES", "LabelMapping", "label_table", "map_labels", "describe_codes", "normalize_code"]

VOCABULARIES: tuple[str, ...] = ("ptbxl_scp", "snomed", "cpsc2018", "cinc2017", "chapman_rhythm", "ludb_text")

#: Single-label tasks resolved by precedence (the first class present wins) instead of "conflict -> None".
_PRECEDENCE: dict[str, tuple[str, ...]] = {"cinc2017": ("A", "O", "N")}
#: Vocabularies whose codes also match statements that start with them, followed by ':' or ','.
_PREFIX_VOCABULARIES = frozenset({"ludb_text"})
_ONLY_CODE = " (only code)"


@dataclass(frozen=True)
class LabelMapping:
    """One row of ``label_map.csv``: a source code, its description and its class per task."""

    vocabulary: str
    code: str
    description: str
    classes: Mapping[str, str] = field(default_factory=dict)
    #: tasks for which the class counts only when this code is the record's only code
    only_code: frozenset[str] = frozenset()


def normalize_code(code: object) -> str:
    """The matching key of a code: case-folded, blanks collapsed, a final ``.`` dropped (``"Sinus rhythm."``)."""
    return " ".join(str(code).split()).casefold().rstrip(".").rstrip()


@functools.cache
def _load_table() -> tuple[LabelMapping, ...]:
    text = resources.files(__package__).joinpath("label_map.csv").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    tasks = [name for name in (reader.fieldnames or []) if name not in ("vocabulary", "code", "description")]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:  # the table and tasks.py must evolve together
        raise RuntimeError(f"label_map.csv has columns for unknown tasks {unknown}; known tasks: {list(TASKS)}.")
    rows = []
    for row in reader:
        if row["vocabulary"] not in VOCABULARIES:
            raise RuntimeError(f"label_map.csv: unknown vocabulary {row['vocabulary']!r} (known: {VOCABULARIES}).")
        classes, only = {}, set()
        for task in tasks:
            cell = (row[task] or "").strip()
            if cell.endswith(_ONLY_CODE):
                cell = cell[: -len(_ONLY_CODE)]
                only.add(task)
            if cell:
                if cell not in TASKS[task].label2id:
                    raise RuntimeError(f"label_map.csv: {row['code']!r} maps to {cell!r}, not a class of {task!r}.")
                classes[task] = cell
        rows.append(LabelMapping(row["vocabulary"], row["code"], row["description"], classes, frozenset(only)))
    return tuple(rows)


@functools.cache
def _index() -> dict[tuple[str, str], LabelMapping]:
    index: dict[tuple[str, str], LabelMapping] = {}
    for row in _load_table():
        key = (row.vocabulary, normalize_code(row.code))
        if key in index:
            raise RuntimeError(f"label_map.csv lists {row.vocabulary} code {row.code!r} twice.")
        index[key] = row
    return index


def label_table(vocabulary: str | None = None, task: str | None = None) -> tuple[LabelMapping, ...]:
    """The rows of the label map, optionally only one vocabulary's and/or only those with a class for ``task``."""
    if vocabulary is not None:
        _check_vocabulary(vocabulary)
    if task is not None:
        get_task(task)
    return tuple(
        row
        for row in _load_table()
        if (vocabulary is None or row.vocabulary == vocabulary) and (task is None or task in row.classes)
    )


def _check_vocabulary(vocabulary: str) -> None:
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"Unknown label vocabulary {vocabulary!r}; known vocabularies: {', '.join(VOCABULARIES)}.")


def _lookup(vocabulary: str, code: str) -> LabelMapping | None:
    index = _index()
    row = index.get((vocabulary, code))
    if row is None and vocabulary in _PREFIX_VOCABULARIES:  # the longest head followed by ':' or ','
        for match in reversed(list(re.finditer(r"[:,]", code))):
            row = index.get((vocabulary, code[: match.start()].strip()))
            if row is not None:
                break
    return row


def _codes(codes: Iterable[str] | str) -> list[str]:
    if isinstance(codes, str):
        codes = [codes]
    keys = []
    for code in codes:
        key = normalize_code(code)
        if key and key not in keys:
            keys.append(key)
    return keys


def map_labels(vocabulary: str, codes: Iterable[str], task: str) -> tuple[str, ...] | None:
    """The classes of ``task`` that a record's ``codes`` (in ``vocabulary``) give, or None when they give none.

    Multi-label tasks get every class found, in task order. Single-label tasks get one class: for ``chapman``
    two different classes give None (a conflict); ``cinc2017`` resolves by precedence A > O > N (N means sinus
    rhythm without arrhythmia). Codes unknown to the table, or without a class for ``task``, are ignored.
    """
    _check_vocabulary(vocabulary)
    spec = get_task(task)
    keys = _codes(codes)
    found: set[str] = set()
    for key in keys:
        row = _lookup(vocabulary, key)
        if row is None or task not in row.classes:
            continue
        if task in row.only_code and len(keys) > 1:
            continue
        found.add(row.classes[task])
    if not found:
        return None
    if spec.multi_label:
        return tuple(label for label in spec.labels if label in found)
    if task in _PRECEDENCE:
        return (next(label for label in _PRECEDENCE[task] + spec.labels if label in found),)
    return (found.pop(),) if len(found) == 1 else None


def describe_codes(vocabulary: str, codes: Iterable[str]) -> tuple[str, ...]:
    """English descriptions of the ``codes`` the table knows (unknown codes are left out), in the given order."""
    _check_vocabulary(vocabulary)
    out: list[str] = []
    for key in _codes(codes):
        row = _lookup(vocabulary, key)
        if row is not None and row.description not in out:
            out.append(row.description)
    return tuple(out)
