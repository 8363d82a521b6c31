"""`datasets` for the ECG databases, from one builder class and one factory.

datasets 5 has no loading scripts, so the builder ships in the package and reads local files::

    from tac_ecg_hf.data import load_task_dataset
    ds = load_task_dataset("cpsc2018", "../shared/data", feature_extractor=fe)      # DatasetDict train/validation/test
    ds["train"].set_transform(ECGTransform(fe, train=True))
    ds["train"][0]["input_values"].shape                                            # (12, 1000)

Each example holds one record *prepared* by the model's feature extractor (leads in the model's order, resampled,
band-passed: :meth:`ECGFeatureExtractor.prepare`), at full length: ``signal`` (float16 bytes, ``(num_leads, samples)``
row-major, as datasets' ``Audio`` feature keeps bytes; python extraction of a ragged 2-D array column is 200x slower),
``num_leads``, ``labels`` (a multi-hot ``List(float32)`` for multi-label tasks, a ``ClassLabel`` for single-label
tasks), ``record_id``, ``database``, ``fold`` (PTB-XL's ``strat_fold``, -1 elsewhere) and, for ECG-text pairs,
``text``. The windowing and normalisation then happen in the transform (:class:`ECGTransform`, the same extractor's
:meth:`~ECGFeatureExtractor.crop_window`): a random crop per epoch for training, the centre window for validation.

Caching: ``<cache_dir>/<dataset>/<config id>/<version>/<hash>``; the hash covers the pipeline version, the builder
settings (database, task, text source, feature extractor) and a fingerprint (names, sizes, modification times) of the
files under ``data_dir``, so changed settings or edited files never reuse a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ..tasks import get_task
from .errors import ECGInputError, ECGQualityWarning

logger = logging.getLogger(__name__)

__all__ = [
    "DATA_PIPELINE_VERSION",
    "TASK_SOURCES",
    "CETP_SOURCES",
    "ECGBuilderConfig",
    "ECGDatasetBuilder",
    "ECGTransform",
    "load_ecg_dataset",
    "load_task_dataset",
    "load_cetp_pairs",
    "with_transform",
    "decode_signal",
    "data_fingerprint",
]

#: Bump when the generated examples change for the same inputs (part of every cache path).
DATA_PIPELINE_VERSION = "2.0.0"
SPLITS = ("train", "validation", "test")
_MAX_FINGERPRINT_FILES = 2_000_000

#: databases (folders of the data root) whose records carry labels of each task, in one label space (labels.py)
TASK_SOURCES: dict[str, tuple[str, ...]] = {
    "ptbxl-super": ("ptbxl",),
    "cpsc2018": ("cpsc2018", "ptbxl", "physionet2020", "ludb"),
    "cinc2017": ("cinc2017", "ptbxl", "physionet2020", "ludb"),
    "chapman": ("ptbxl", "ludb", "physionet2020", "chapman"),
}
#: databases with ECG-text pairs used for CETP pre-training. CPSC2018 and CinC2017 are left out on purpose: their text
#: would be their labels, and their adapters are estimated by k-fold cross-validation over all their records, which
#: must not have been seen with their labels by the encoder.
CETP_SOURCES: tuple[str, ...] = ("ptbxl", "ludb", "physionet2020")
#: sub-folder of the data root (the layout of ../shared/data) holding each database
DATABASE_FOLDERS = {"physionet2020": "cinc2020"}


def data_fingerprint(*paths: str | os.PathLike) -> str:
    """Hash of the pipeline version and the names, sizes and mtimes of all files under ``paths``."""
    digest = hashlib.sha256(DATA_PIPELINE_VERSION.encode())
    n_files = 0
    for root in paths:
        root = Path(root)
        digest.update(os.fspath(root.resolve()).encode("utf-8", "surrogateescape") + b"\0")
        if root.is_file():
            st = root.stat()
            digest.update(f"{st.st_size}:{st.st_mtime_ns}\n".encode())
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                rel = os.path.relpath(full, root)
                digest.update(f"{rel}\0{st.st_size}:{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
                n_files += 1
                if n_files > _MAX_FINGERPRINT_FILES:
                    raise ECGInputError(
                        f"{os.fspath(root)} holds more than {_MAX_FINGERPRINT_FILES} files; point data_dir at the "
                        "dataset folder."
                    )
    return digest.hexdigest()[:16]


@dataclass
class ECGBuilderConfig(datasets.BuilderConfig):
    """Settings of :class:`ECGDatasetBuilder`.

    Attributes:
        database: a name from :data:`tac_ecg_hf.data.databases.DATABASES` (``"ptbxl"``, ``"cpsc2018"``, ...).
        task: keep the records carrying labels of this task, encoded in its label space; ``None``: no labels.
        text_source: ECG-text pairs: the text the database gives (``"report"``, ``"scp"``, ``"both"`` for PTB-XL; any
            value for the others); records without text are dropped.
        feature_extractor: the ``ECGFeatureExtractor`` settings (``fe.to_dict()``) that prepare each record.
        max_records: at most this many records per split (quick tests).
        on_error: ``"skip"`` (warn with a summary and continue) or ``"raise"`` for unusable records.
        database_options: keyword arguments of the database reader (e.g. ``{"array_file": ...}`` for PTB-XL).
    """

    database: str = ""
    task: str | None = None
    text_source: str | None = None
    feature_extractor: dict | None = None
    max_records: int | None = None
    on_error: str = "skip"
    database_options: dict | None = None


class ECGDatasetBuilder(datasets.GeneratorBasedBuilder):
    """One builder for every database: records from the database's reader, labels from the shared label map, signals
    prepared by the feature extractor. Use :func:`load_ecg_dataset`."""

    BUILDER_CONFIG_CLASS = ECGBuilderConfig
    VERSION = datasets.Version(DATA_PIPELINE_VERSION)

    def __init__(self, *args: Any, data_dir: str | os.PathLike | None = None, **kwargs: Any):
        if data_dir is None or not os.path.isdir(data_dir):
            raise ECGInputError(f"ECGDatasetBuilder reads local files: data_dir {data_dir!r} is not a directory.")
        data_dir = os.path.abspath(os.fspath(data_dir))
        settings = {k: kwargs.get(k) for k in ("database", "task", "text_source", "feature_extractor", "max_records",
                                               "on_error", "database_options")}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
        kwargs.setdefault("hash", f"{data_fingerprint(data_dir)}-{digest}")
        name = kwargs.get("database") or "ecg"
        super().__init__(
            *args, data_dir=data_dir, dataset_name=f"tac_ecg_{name}", config_name=f"{name}-{digest}", **kwargs
        )
        self._validate()

    def _validate(self) -> None:
        cfg = self.config
        from .databases import DATABASES

        if cfg.database not in DATABASES:
            raise ValueError(f"Unknown database {cfg.database!r}; known: {', '.join(sorted(DATABASES))}.")
        if cfg.task is not None:
            get_task(cfg.task)
        if cfg.on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {cfg.on_error!r}.")
        if cfg.max_records is not None and cfg.max_records <= 0:
            raise ValueError(f"max_records must be a positive integer or None, got {cfg.max_records!r}.")
        self.feature_extractor  # noqa: B018 - validates the settings

    @property
    def feature_extractor(self):
        from .feature_extraction_ecg import ECGFeatureExtractor

        return ECGFeatureExtractor(**(self.config.feature_extractor or {}))

    def _info(self) -> datasets.DatasetInfo:
        features = {
            "signal": datasets.Value("binary"),
            "num_leads": datasets.Value("int16"),
            "record_id": datasets.Value("string"),
            "database": datasets.Value("string"),
            "fold": datasets.Value("int16"),
        }
        if self.config.task is not None:
            spec = get_task(self.config.task)
            features["labels"] = (
                datasets.List(datasets.Value("float32"), length=spec.num_labels)
                if spec.multi_label
                else datasets.ClassLabel(names=list(spec.labels))
            )
        if self.config.text_source is not None:
            features["text"] = datasets.Value("string")
        return datasets.DatasetInfo(
            description=f"{self.config.database} prepared for {self.config.task}", features=datasets.Features(features)
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": split}) for split in SPLITS]

    def _database(self):
        from .databases import get_database

        options = dict(self.config.database_options or {})
        if self.config.text_source is not None and self.config.database == "ptbxl":
            options["text_source"] = self.config.text_source
        return get_database(self.config.database, self.config.data_dir, **options)

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        cfg = self.config
        db, fe = self._database(), self.feature_extractor
        spec = get_task(cfg.task) if cfg.task else None
        skipped: list[str] = []
        count = 0
        for record in db.records(split, on_error=cfg.on_error):
            example: dict[str, Any] = {"record_id": record.record_id, "database": cfg.database}
            if spec is not None:
                labels = db.task_labels(record, spec.name)
                if labels is None:
                    continue
                example["labels"] = _encode(labels, spec)
            if cfg.text_source is not None:
                text = db.text(record)
                if not text:
                    continue
                example["text"] = text
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ECGQualityWarning)
                    prepared = fe.prepare(record)
            except ECGInputError as exc:
                if cfg.on_error == "raise":
                    raise
                skipped.append(f"{record.record_id}: {exc}")
                continue
            fold = db.fold_of(record.record_id)
            example.update(
                signal=prepared.signal.astype("<f2").tobytes(),
                num_leads=prepared.signal.shape[0],
                fold=-1 if fold is None else int(fold),
            )
            yield record.record_id, example
            count += 1
            if cfg.max_records is not None and count >= cfg.max_records:
                break
        if skipped:
            warnings.warn(
                f"{cfg.database}/{split}: skipped {len(skipped)} unusable records (kept {count}); first reasons: "
                f"{skipped[:3]}",
                ECGQualityWarning,
                stacklevel=2,
            )


def _encode(labels: Sequence[str], spec) -> list[float] | int:
    if spec.multi_label:
        vector = [0.0] * spec.num_labels
        for label in labels:
            vector[spec.label2id[label]] = 1.0
        return vector
    return spec.label2id[labels[0]]


def decode_signal(example: dict) -> np.ndarray:
    """The prepared signal ``(num_leads, samples)`` float32 of one example."""
    return np.frombuffer(example["signal"], dtype="<f2").reshape(int(example["num_leads"]), -1).astype(np.float32)


class ECGTransform:
    """``set_transform`` function: decodes the prepared signals and cuts the model's window with the feature
    extractor (a random crop when ``train``, the centre one otherwise), then applies ``augment`` (training only).

    With a ``seed``, the random draws of each example come from ``(seed, epoch, the example's database and record
    id)`` rather than from one stream shared by all batches: a run resumed from a checkpoint (Trainer skips the batches
    already trained on without transforming them) and each process of a distributed run crop and augment exactly as
    an uninterrupted single-process run. ``epoch`` is set by
    :class:`tac_ecg_hf.training.TransformEpochCallback` under Trainer (or by hand).

    Returns ``input_values`` and whatever other columns are asked for in ``keep`` (default ``labels`` and ``text``)."""

    def __init__(
        self, feature_extractor, train: bool = False, augment=None, seed: int | None = None, keep=("labels", "text")
    ):
        self.fe = feature_extractor
        self.train = train
        self.augment = augment
        self.keep = tuple(keep)
        self.seed = seed
        self.epoch = 0
        self.rng = np.random.default_rng(seed)

    def _example_rng(self, batch: dict[str, list], i: int) -> np.random.Generator:
        if self.seed is None or "record_id" not in batch:
            return self.rng
        key = f"{batch['database'][i] if 'database' in batch else ''}/{batch['record_id'][i]}"
        return np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode("utf-8"))])

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        from .feature_extraction_ecg import PreparedECG

        crop = "random" if self.train else "center"
        values = []
        for i, (signal, n) in enumerate(zip(batch["signal"], batch["num_leads"])):
            rng = self._example_rng(batch, i) if self.train else self.rng
            prepared = PreparedECG(np.frombuffer(signal, dtype="<f2").reshape(int(n), -1).astype(np.float32))
            if self.train and self.augment is not None:
                prepared = self.augment.before_window(prepared, self.fe, rng)
            window = self.fe.crop_window(prepared, crop, rng)
            if self.train and self.augment is not None:
                window = self.augment.after_window(window, self.fe, rng)
            values.append(window)
        out = {"input_values": values}
        for key in self.keep:
            if key in batch:
                out[key] = batch[key]
        return out


def load_ecg_dataset(
    database: str,
    data_dir: str | os.PathLike,
    *,
    task: str | None = None,
    feature_extractor=None,
    text_source: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    max_records: int | None = None,
    on_error: str = "skip",
    download_mode: str | None = None,
    streaming: bool = False,
    **database_options: Any,
) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """Build (or reuse from cache) one database's records, prepared by ``feature_extractor`` (default: the 12-lead,
    100 Hz, 0.5-40 Hz extractor of the bundled encoders), as a ``DatasetDict`` train/validation/test.

    ``streaming=True``: an ``IterableDatasetDict`` read record by record, with no Arrow cache, for corpora that do not
    fit in memory or on disk (MIMIC-IV-ECG's 800,000 records); apply the transform with :func:`with_transform`."""
    from .feature_extraction_ecg import ECGFeatureExtractor

    fe = feature_extractor if feature_extractor is not None else ECGFeatureExtractor()
    builder = ECGDatasetBuilder(
        data_dir=data_dir,
        cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        database=database,
        task=task,
        text_source=text_source,
        feature_extractor=fe.settings(),
        max_records=max_records,
        on_error=on_error,
        database_options=database_options or None,
    )
    if streaming:
        return datasets.IterableDatasetDict({split: builder.as_streaming_dataset(split=split) for split in SPLITS})
    try:
        builder.download_and_prepare(download_mode=download_mode)
    except datasets.exceptions.DatasetGenerationError as exc:
        # surface our own error (record id, problem, fix) instead of datasets' generic wrapper
        if isinstance(exc.__cause__, (ECGInputError, FileNotFoundError, ValueError)):  # e.g. a reader's argument check
            raise exc.__cause__ from None
        raise
    out = datasets.DatasetDict()
    for split in SPLITS:
        info = builder.info.splits.get(split) if builder.info.splits else None
        if info is not None and info.num_examples > 0:
            out[split] = builder.as_dataset(split=split)
        else:  # tiny datasets: an empty split with the right features instead of datasets' "no data" error
            out[split] = datasets.Dataset.from_dict(
                {k: [] for k in builder.info.features}, features=builder.info.features
            )
    return out


def with_transform(dataset, transform):
    """Apply an :class:`ECGTransform`: ``set_transform`` on a ``Dataset`` (applied when rows are read), a batched
    ``map`` on an ``IterableDataset`` (applied as records stream by), keeping only the transform's output columns."""
    if isinstance(dataset, datasets.IterableDataset):
        columns = dataset.column_names or list(dataset.features or [])
        drop = [c for c in columns if c not in transform.keep and c != "input_values"]
        return dataset.map(transform, batched=True, batch_size=64, remove_columns=drop or None)
    dataset.set_transform(transform)
    return dataset


def database_dir(data_root: str | os.PathLike, database: str) -> Path:
    """The folder of ``database`` under a data root laid out like ``../shared/data``."""
    return Path(data_root).expanduser() / DATABASE_FOLDERS.get(database, database)


def _concat(parts: list) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    kind = datasets.IterableDatasetDict if isinstance(parts[0], datasets.IterableDatasetDict) else datasets.DatasetDict
    return kind({split: datasets.concatenate_datasets([p[split] for p in parts]) for split in SPLITS})


def _available(data_root, sources) -> list[str]:
    """The databases of ``sources`` present under ``data_root`` with signals (the Chapman labels come without)."""
    from .databases import get_database

    found = []
    for name in sources:
        folder = database_dir(data_root, name)
        if not folder.is_dir():
            continue
        try:
            db = get_database(name, folder, **_database_options(name, data_root))
        except (OSError, ValueError):
            continue
        if db.has_signals():
            found.append(name)
    return found


def load_task_dataset(
    task: str,
    data_root: str | os.PathLike,
    *,
    sources: Sequence[str] | None = None,
    feature_extractor=None,
    cache_dir: str | os.PathLike | None = None,
    max_records: int | None = None,
    on_error: str = "skip",
    streaming: bool = False,
) -> datasets.DatasetDict:
    """Every record of the task's sources (default :data:`TASK_SOURCES`, those present under ``data_root``) that
    carries a label of ``task``, mapped to its classes through the shared label map, concatenated per split (column
    ``database`` says where each came from). Test-split records of every source stay in ``test``."""
    spec = get_task(task)
    names = _available(data_root, sources or TASK_SOURCES[spec.name])
    if not names:
        raise ECGInputError(
            f"No data for task {task!r} under {data_root}: expected some of {TASK_SOURCES[spec.name]}."
        )
    parts = [
        load_ecg_dataset(
            name, database_dir(data_root, name), task=spec.name, feature_extractor=feature_extractor,
            cache_dir=cache_dir, max_records=max_records, on_error=on_error, streaming=streaming,
            **_database_options(name, data_root),
        )
        for name in names
    ]
    return _concat(parts)


def load_cetp_pairs(
    data_root: str | os.PathLike,
    *,
    sources: Sequence[str] | None = None,
    text_source: str = "both",
    feature_extractor=None,
    cache_dir: str | os.PathLike | None = None,
    max_records: int | None = None,
    streaming: bool = False,
) -> datasets.DatasetDict:
    """ECG-text pairs of every CETP source present under ``data_root`` (default :data:`CETP_SOURCES`)."""
    names = _available(data_root, sources or CETP_SOURCES)
    if not names:
        raise ECGInputError(f"No ECG-text pairs under {data_root}: expected some of {CETP_SOURCES}.")
    parts = [
        load_ecg_dataset(
            name, database_dir(data_root, name), text_source=text_source, feature_extractor=feature_extractor,
            cache_dir=cache_dir, max_records=max_records, streaming=streaming, **_database_options(name, data_root),
        )
        for name in names
    ]
    return _concat(parts)


def _database_options(name: str, data_root) -> dict:
    """Cross-database links: the PhysioNet 2020 records of PTB-XL (``HR*``) take labels and folds from PTB-XL."""
    if name == "physionet2020" and database_dir(data_root, "ptbxl").is_dir():
        return {"ptbxl_root": str(database_dir(data_root, "ptbxl"))}
    return {}
