"""The shared base of the database readers: listing, loading, iterating, splits and task labels of one dataset."""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from ...tasks import get_task
from ..errors import ECGFileError, ECGFileNotFoundError, ECGInputError, ECGQualityWarning
from ..labels import describe_codes, map_labels
from ..record import ECGRecord

__all__ = ["SPLITS", "ON_ERROR", "ECGDatabase", "assign_split", "combine_labels"]

SPLITS = ("train", "validation", "test")
ON_ERROR = ("raise", "skip")


def assign_split(record_id: str, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0) -> str:
    """Deterministic train/validation/test assignment for datasets without official folds.

    The record id and seed are hashed with SHA-256 (``f"{seed}:{record_id}"``); the first 8 bytes give a number
    ``u`` uniform in [0, 1), and the split is ``"train"`` if ``u < fractions[0]``, ``"validation"`` if
    ``u < fractions[0] + fractions[1]``, else ``"test"``. The result depends only on the id, the fractions and
    the seed: it is stable across machines, Python versions and dataset subsets, and adding records never moves
    existing ones.
    """
    if len(fractions) != 3 or any((not isinstance(f, (int, float))) or f < 0 for f in fractions):
        raise ValueError(f"fractions must be three non-negative numbers (train, validation, test), got {fractions!r}.")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(fractions):g}).")
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}.")


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    return on_error


def plain_file(root: Path, record_id: str, suffix: str, dataset: str) -> Path:
    """``root/<record_id><suffix>``, refusing ids (read from index files) that are not plain file names."""
    if not record_id or record_id in (".", "..") or any(c in record_id for c in "/\\\x00") or len(record_id) > 200:
        raise ECGFileError(f"{dataset}: record id {record_id[:80]!r} from the index file is not a plain file name.")
    return root / f"{record_id}{suffix}"


def relative_path(root: Path, value: object, what: str, dataset: str, record_id: str) -> Path:
    """``root / value`` for a relative path from an index file (no absolute paths, no ``..``)."""
    if not isinstance(value, str) or not value or os.path.isabs(value) or ".." in Path(value).parts or "\x00" in value:
        raise ECGFileError(
            f"{dataset} record {record_id}: {what} {str(value)[:80]!r} in the index file is not a relative path "
            f"inside {root}."
        )
    return root / value


def combine_labels(groups: Sequence[tuple[str, Sequence[str]]], task: str) -> tuple[str, ...] | None:
    """:func:`~tac_ecg_hf.data.labels.map_labels` over codes of several vocabularies (e.g. abbreviations and SNOMED
    codes in one ``#Dx`` line): multi-label tasks get the union, single-label tasks None unless all agree."""
    found: list[str] = []
    for vocabulary, codes in groups:
        for label in map_labels(vocabulary, codes, task) or ():
            if label not in found:
                found.append(label)
    if not found:
        return None
    spec = get_task(task)
    if spec.multi_label:
        return tuple(label for label in spec.labels if label in found)
    return tuple(found) if len(found) == 1 else None


class ECGDatabase:
    """One ECG dataset on disk, read record by record (in the manner of torch_ecg's ``databases``).

    Subclasses set :attr:`name`, :attr:`title` and :attr:`vocabulary`, and implement :meth:`_list_records` and
    :meth:`_load`; the base class gives listing by split, loading with the dataset's name in errors, iteration
    with ``on_error``, hash splits (:func:`assign_split`) and task labels through :mod:`~tac_ecg_hf.data.labels`.

    Args:
        root: the dataset folder (e.g. ``/data/ptbxl``).
        on_error: ``"raise"``, or ``"skip"`` to warn (:class:`ECGQualityWarning`) and go on when a record cannot be
            read; the default of :meth:`records`.
        split_fractions, split_seed: the :func:`assign_split` settings of datasets without official folds.
    """

    #: registry key, e.g. ``"ptbxl"``
    name: ClassVar[str] = ""
    #: name in messages, e.g. ``"PTB-XL"``
    title: ClassVar[str] = ""
    #: the :mod:`~tac_ecg_hf.data.labels` vocabulary of ``record.labels``
    vocabulary: ClassVar[str | None] = None

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        on_error: str = "raise",
        split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
        split_seed: int = 0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ECGFileNotFoundError(f"{self.title} data directory {self.root} does not exist or is no directory.")
        self.on_error = check_on_error(on_error)
        assign_split("", split_fractions, split_seed)  # validates the settings
        self.split_fractions, self.split_seed = tuple(split_fractions), split_seed
        self._locate()

    def _locate(self) -> None:
        """Find (and check) the database's index files under ``root``; subclasses whose layout has some override it
        instead of repeating the constructor's signature."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={os.fspath(self.root)!r})"

    # -- to implement ---------------------------------------------------------------------------------------------

    def _list_records(self) -> list[str]:
        """All record ids, in a stable order."""
        raise NotImplementedError

    def _load(self, record_id: str) -> ECGRecord:
        """Read one record (signal, ``labels`` in the source's vocabulary, ``meta``)."""
        raise NotImplementedError

    # -- listing and loading --------------------------------------------------------------------------------------

    @cached_property
    def _ids(self) -> list[str]:
        return self._list_records()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, record_id: object) -> bool:
        return str(record_id) in self._id_set

    @cached_property
    def _id_set(self) -> frozenset[str]:
        return frozenset(self._ids)

    def record_ids(self, split: str | None = None) -> list[str]:
        """The record ids, all or those of one split (``"train"``, ``"validation"``, ``"test"``)."""
        check_split(split)
        if split is None:
            return list(self._ids)
        return [rid for rid in self._ids if self.split_of(rid) == split]

    def load(self, record_id: str) -> ECGRecord:
        """Read one record; ``record.labels`` are the source's own labels (codes or abbreviations)."""
        record_id = str(record_id)
        if record_id not in self._id_set:
            raise KeyError(f"{self.title}: no record {record_id!r} under {self.root} ({len(self)} records).")
        record = self._load(record_id)
        record.record_id = record_id
        record.meta.setdefault("split", self.split_of(record_id))
        return record

    def records(
        self,
        split: str | None = None,
        *,
        record_ids: Iterable[str] | None = None,
        on_error: str | None = None,
        limit: int | None = None,
    ) -> Iterator[ECGRecord]:
        """Yield the records of ``split`` (all when None), or of ``record_ids`` in that order, at most ``limit``.

        Unreadable records raise, or with ``on_error="skip"`` are left out with an :class:`ECGQualityWarning`.
        """
        on_error = check_on_error(on_error or self.on_error)
        if record_ids is None:
            ids = self.record_ids(split)
        else:
            check_split(split)
            ids = [str(rid) for rid in record_ids if split is None or self.split_of(str(rid)) == split]
        return self._iter(ids, on_error, limit)

    def _iter(self, ids: list[str], on_error: str, limit: int | None) -> Iterator[ECGRecord]:
        if limit is not None and limit <= 0:
            return
        count = 0
        for record_id in ids:
            try:
                record = self.load(record_id)
            except ECGInputError as exc:
                if on_error == "raise":
                    raise
                warnings.warn(f"{self.title}: skipped record {record_id!r}: {exc}", ECGQualityWarning, stacklevel=3)
                continue
            yield record
            count += 1
            if limit is not None and count >= limit:
                return

    # -- splits ---------------------------------------------------------------------------------------------------

    def split_of(self, record_id: str) -> str:
        """``"train"``, ``"validation"`` or ``"test"``; by default :func:`assign_split` of the record id."""
        return assign_split(str(record_id), self.split_fractions, self.split_seed)

    def fold_of(self, record_id: str) -> int | None:
        """The official fold of the record, or None for datasets without folds."""
        return None

    # -- labels and text ------------------------------------------------------------------------------------------

    def labels_of(self, record_id: str) -> tuple[str, ...]:
        """The source labels of a record from the index files or its header, without reading the signal."""
        return self.load(record_id).labels

    def label_codes(self, record: ECGRecord | str) -> list[tuple[str, tuple[str, ...]]]:
        """``[(vocabulary, codes), ...]`` of a record (or record id); by default its labels in :attr:`vocabulary`."""
        return self._by_vocabulary(record.labels if isinstance(record, ECGRecord) else self.labels_of(str(record)))

    def _by_vocabulary(self, codes: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
        return [(self.vocabulary, tuple(codes))] if self.vocabulary and codes else []

    def task_labels(self, record: ECGRecord | str, task: str) -> tuple[str, ...] | None:
        """The classes of a record (or, without reading its signal, a record id) for ``task``, None when it has none.

        The source labels are mapped by :func:`~tac_ecg_hf.data.labels.map_labels` (the table ``label_map.csv``).
        """
        return combine_labels(self.label_codes(record), task)

    def has_signals(self) -> bool:
        """Whether the signal files are there (a label table may come without them, as Chapman's does here)."""
        return True

    def text(self, record: ECGRecord) -> str | None:
        """The English text of an ECG-text pair (CETP): the descriptions of the record's labels, or None."""
        parts = [d for vocabulary, codes in self.label_codes(record) for d in describe_codes(vocabulary, codes)]
        return " ".join(f"{p.rstrip('.')}." for p in parts) or None
