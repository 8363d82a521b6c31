"""`datasets` builders for PTB-XL, CPSC2018, CinC2017, Chapman-Shaoxing and PTB-XL ECG-text pairs.

datasets 5 has no loading scripts, so the builders ship in the package and read local files::

    from tac_ecg_hf.data import load_ecg_dataset
    ds = load_ecg_dataset("cpsc2018", "/data/cpsc2018")          # DatasetDict train/validation/test
    ds["train"].with_format("torch")[0]["input_values"].shape    # torch.Size([12, 1000])

Every example has ``input_values`` (``Array2D((12, num_samples), "float16")``, preprocessed by
:class:`~tac_ecg_hf.data.preprocessing.ECGPreprocessor`), ``labels`` (a multi-hot
``List(Value("float32"), length=K)`` for multi-label tasks, a ``ClassLabel`` for single-label tasks)
and ``record_id``. The CETP builder yields ``input_values`` + ``text`` instead of labels.

Caching: the cache directory is ``<cache_dir>/<dataset>/<config id>/<version>/<hash>``. The config id
includes every config parameter passed (and the absolute ``data_dir``); the hash covers the data
pipeline version and a fingerprint (names, sizes, modification times) of the files under ``data_dir``,
so changed parameters, another folder or edited files never reuse a stale cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import datasets
import numpy as np

from ..tasks import DEFAULT_NUM_SAMPLES, DEFAULT_SAMPLING_RATE, STANDARD_LEADS, TaskSpec, get_task
from .errors import ECGInputError, ECGQualityWarning, ECGResamplingWarning
from .preprocessing import CROP_MODES, ECGPreprocessor
from .readers import SPLITS, read_chapman, read_cinc2017, read_cpsc2018, read_ptbxl
from .record import ECGRecord, encode_labels

logger = logging.getLogger(__name__)

__all__ = [
    "DATA_PIPELINE_VERSION",
    "ECGBuilderConfig",
    "PTBXLConfig",
    "PTBXLCETPConfig",
    "ChapmanConfig",
    "PTBXLBuilder",
    "PTBXLCETPBuilder",
    "CPSC2018Builder",
    "CinC2017Builder",
    "ChapmanBuilder",
    "BUILDERS",
    "get_builder",
    "load_ecg_dataset",
    "load_cetp_pairs",
    "data_fingerprint",
]

#: Bump when the generated examples change for the same inputs (part of every cache path).
DATA_PIPELINE_VERSION = "1.0.0"
_MAX_FINGERPRINT_FILES = 2_000_000


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
                    raise ECGInputError(f"{os.fspath(root)} holds more than {_MAX_FINGERPRINT_FILES} files; point data_dir at the dataset folder.")
    return digest.hexdigest()[:16]


@dataclass
class ECGBuilderConfig(datasets.BuilderConfig):
    """Settings shared by the ECG builders.

    Attributes:
        task: task name from :data:`tac_ecg_hf.tasks.TASKS` (label set, problem type).
        sampling_rate, num_samples, normalize, crop: the :class:`ECGPreprocessor` settings.
        max_records: at most this many records per split (for quick tests and debugging).
        split_fractions, split_seed: :func:`~tac_ecg_hf.data.readers.assign_split` settings for
            datasets without official folds (CPSC2018, CinC2017, Chapman).
        on_error: ``"skip"`` (warn with a summary and continue) or ``"raise"`` for unusable records.
    """

    task: str = ""
    sampling_rate: float = DEFAULT_SAMPLING_RATE
    num_samples: int = DEFAULT_NUM_SAMPLES
    normalize: bool = True
    crop: str = "center"
    max_records: int | None = None
    split_fractions: tuple = (0.7, 0.15, 0.15)
    split_seed: int = 0
    on_error: str = "skip"


@dataclass
class PTBXLConfig(ECGBuilderConfig):
    """PTB-XL settings: ``source_sampling_rate`` picks ``records100`` or ``records500``; ``array_file`` an
    ``.npz`` (``X`` (N, T, 12), ``ecg_id``) instead of WFDB records (relative to ``data_dir`` or absolute)."""

    source_sampling_rate: int = 100
    array_file: str | None = None
    array_units: str = "normalized"


@dataclass
class PTBXLCETPConfig(PTBXLConfig):
    """PTB-XL ECG-text pairs: ``text_source`` is ``"report"``, ``"scp"`` (English SCP statement text) or ``"both"``."""

    text_source: str = "report"
    qualify_likelihood: bool = False


@dataclass
class ChapmanConfig(ECGBuilderConfig):
    """Chapman-Shaoxing settings: the signal folder, the diagnostics table and the CSV units."""

    signal_dir: str = "ECGData"
    diagnostics_file: str | None = None
    units: str = "uV"


_VERSION = datasets.Version(DATA_PIPELINE_VERSION)


class _ECGBuilder(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = ECGBuilderConfig
    VERSION = _VERSION
    DATASET_NAME = "tac_ecg"
    #: dataset label for messages
    SOURCE = "ECG"

    def __init__(self, *args: Any, data_dir: str | os.PathLike | None = None, hash: str | None = None, dataset_name: str | None = None, **kwargs: Any):
        if data_dir is None:
            raise ECGInputError(
                f"{type(self).__name__} reads local files: pass data_dir=<folder with the {self.SOURCE} files>."
            )
        data_dir = os.path.abspath(os.fspath(data_dir))
        if not os.path.isdir(data_dir):
            raise ECGInputError(f"{type(self).__name__}: data_dir {data_dir} does not exist or is not a directory.")
        if hash is None:
            extra = []
            array_file = kwargs.get("array_file")
            if array_file is not None and os.path.isabs(os.fspath(array_file)):
                extra.append(array_file)
            hash = data_fingerprint(data_dir, *extra)
        super().__init__(*args, data_dir=data_dir, hash=hash, dataset_name=dataset_name or self.DATASET_NAME, **kwargs)
        self._validate_config()

    # -- configuration --------------------------------------------------------------------------
    def _validate_config(self) -> None:
        cfg = self.config
        get_task(cfg.task)
        if cfg.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {cfg.crop!r}.")
        if cfg.on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {cfg.on_error!r}.")
        if cfg.max_records is not None and cfg.max_records <= 0:
            raise ValueError(f"max_records must be a positive integer or None, got {cfg.max_records!r}.")
        _ = self.preprocessor  # validates sampling_rate / num_samples

    @property
    def task_spec(self) -> TaskSpec:
        return get_task(self.config.task)

    @property
    def preprocessor(self) -> ECGPreprocessor:
        cfg = self.config
        return ECGPreprocessor(
            target_leads=STANDARD_LEADS,
            sampling_rate=cfg.sampling_rate,
            num_samples=cfg.num_samples,
            normalize=cfg.normalize,
            crop=cfg.crop,
            fill_missing_leads=tuple(self.task_spec.source_leads) != tuple(STANDARD_LEADS),
            seed=cfg.split_seed,
        )

    def _label_feature(self) -> datasets.features.FeatureType:
        spec = self.task_spec
        if spec.multi_label:
            return datasets.List(datasets.Value("float32"), length=spec.num_labels)
        return datasets.ClassLabel(names=list(spec.labels))

    def _info(self) -> datasets.DatasetInfo:
        spec = self.task_spec
        features = datasets.Features(
            {
                "input_values": datasets.Array2D((len(STANDARD_LEADS), self.config.num_samples), "float16"),
                "labels": self._label_feature(),
                "record_id": datasets.Value("string"),
            }
        )
        return datasets.DatasetInfo(description=f"{spec.description} ({', '.join(spec.labels)})", features=features)

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        names = {"train": datasets.Split.TRAIN, "validation": datasets.Split.VALIDATION, "test": datasets.Split.TEST}
        return [datasets.SplitGenerator(name=names[s], gen_kwargs={"split": s}) for s in SPLITS]

    # -- generation -----------------------------------------------------------------------------
    def _records(self, split: str) -> Iterator[ECGRecord]:
        raise NotImplementedError

    def _example(self, record: ECGRecord, values: np.ndarray) -> dict[str, Any]:
        return {
            "input_values": values,
            "labels": encode_labels(record.labels, self.task_spec, record.record_id),
            "record_id": record.record_id,
        }

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        preprocessor = self.preprocessor
        records = iter(self._records(split))
        skipped: list[str] = []
        quality: list[str] = []
        count = 0
        while True:
            # Warnings are collected per record (never across a yield) and summarised at the end.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    record = next(records)
                except StopIteration:
                    break
                try:
                    values = preprocessor(record).astype(np.float16)
                    if not np.isfinite(values).all():
                        raise ECGInputError(
                            f"Record {record.record_id!r}: values overflow float16; enable normalize=True."
                        )
                    example = self._example(record, values)
                except ECGInputError as exc:
                    if self.config.on_error == "raise":
                        raise
                    skipped.append(str(exc))
                    example = None
            for w in caught:
                if issubclass(w.category, ECGResamplingWarning):
                    continue
                if issubclass(w.category, ECGQualityWarning):
                    (skipped if "skipped record" in str(w.message) else quality).append(str(w.message))
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if example is None:
                continue
            count += 1
            yield record.record_id, example
        where = f"{self.SOURCE} {self.config.name}/{split}"
        if quality:
            logger.warning("%s: %d quality warnings, e.g. %s", where, len(quality), quality[:3])
        if skipped:
            warnings.warn(
                f"{where}: skipped {len(skipped)} unusable records (kept {count}); first reasons: {skipped[:3]}",
                ECGQualityWarning,
                stacklevel=2,
            )


class PTBXLBuilder(_ECGBuilder):
    """PTB-XL diagnostic superclasses (``ptbxl-super``); splits from ``strat_fold`` (1-8 / 9 / 10).

    Records without any diagnostic superclass are dropped (as in the PTB-XL benchmark).
    """

    BUILDER_CONFIG_CLASS = PTBXLConfig
    BUILDER_CONFIGS = [PTBXLConfig(name="ptbxl-super", task="ptbxl-super", version=_VERSION)]
    DEFAULT_CONFIG_NAME = "ptbxl-super"
    DATASET_NAME = "tac_ecg_ptbxl"
    SOURCE = "PTB-XL"
    require_labels = True

    def _records(self, split: str) -> Iterator[ECGRecord]:
        cfg = self.config
        return read_ptbxl(
            cfg.data_dir,
            sampling_rate=cfg.source_sampling_rate,
            array_file=cfg.array_file,
            folds=split,
            require_labels=self.require_labels,
            array_units=cfg.array_units,
            limit=cfg.max_records,
            on_error=cfg.on_error,
        )


class PTBXLCETPBuilder(PTBXLBuilder):
    """PTB-XL ECG-text pairs for CETP: ``input_values`` + ``text`` (report, SCP text or both), all records with text."""

    BUILDER_CONFIG_CLASS = PTBXLCETPConfig
    BUILDER_CONFIGS = [PTBXLCETPConfig(name="ptbxl-cetp", task="ptbxl-super", version=_VERSION)]
    DEFAULT_CONFIG_NAME = "ptbxl-cetp"
    DATASET_NAME = "tac_ecg_ptbxl_cetp"
    require_labels = False

    def _validate_config(self) -> None:
        super()._validate_config()
        from .cetp_pairs import TEXT_SOURCES

        if self.config.text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {self.config.text_source!r}.")

    def _info(self) -> datasets.DatasetInfo:
        features = datasets.Features(
            {
                "input_values": datasets.Array2D((len(STANDARD_LEADS), self.config.num_samples), "float16"),
                "text": datasets.Value("string"),
                "record_id": datasets.Value("string"),
            }
        )
        return datasets.DatasetInfo(description=f"PTB-XL ECG-text pairs ({self.config.text_source})", features=features)

    def _records(self, split: str) -> Iterator[ECGRecord]:
        import pandas as pd

        from .cetp_pairs import _statement_table, record_text

        cfg = self.config
        table = _statement_table(pd.read_csv(Path(cfg.data_dir) / "scp_statements.csv", index_col=0))
        count = 0
        records = read_ptbxl(
            cfg.data_dir,
            sampling_rate=cfg.source_sampling_rate,
            array_file=cfg.array_file,
            folds=split,
            array_units=cfg.array_units,
            on_error=cfg.on_error,
        )
        for record in records:
            text = record_text(record, table, cfg.text_source, qualify=cfg.qualify_likelihood)
            if not text:
                continue
            record.meta["text"] = text
            yield record
            count += 1
            if cfg.max_records is not None and count >= cfg.max_records:
                return

    def _example(self, record: ECGRecord, values: np.ndarray) -> dict[str, Any]:
        return {"input_values": values, "text": record.meta["text"], "record_id": record.record_id}


class CPSC2018Builder(_ECGBuilder):
    """CPSC2018 nine classes (multi-label), 500 Hz 10-60 s records cropped/resampled to the encoder window."""

    BUILDER_CONFIGS = [ECGBuilderConfig(name="cpsc2018", task="cpsc2018", version=_VERSION)]
    DEFAULT_CONFIG_NAME = "cpsc2018"
    DATASET_NAME = "tac_ecg_cpsc2018"
    SOURCE = "CPSC2018"

    def _records(self, split: str) -> Iterator[ECGRecord]:
        cfg = self.config
        return read_cpsc2018(
            cfg.data_dir, split=split, fractions=cfg.split_fractions, seed=cfg.split_seed,
            limit=cfg.max_records, on_error=cfg.on_error,
        )


class CinC2017Builder(_ECGBuilder):
    """CinC 2017 single-lead AF classes (N, A, O, ~); the lead goes into lead I, the other 11 are zero."""

    BUILDER_CONFIGS = [ECGBuilderConfig(name="cinc2017", task="cinc2017", version=_VERSION)]
    DEFAULT_CONFIG_NAME = "cinc2017"
    DATASET_NAME = "tac_ecg_cinc2017"
    SOURCE = "CinC2017"

    def _records(self, split: str) -> Iterator[ECGRecord]:
        cfg = self.config
        return read_cinc2017(
            cfg.data_dir, split=split, fractions=cfg.split_fractions, seed=cfg.split_seed,
            limit=cfg.max_records, on_error=cfg.on_error,
        )


class ChapmanBuilder(_ECGBuilder):
    """Chapman-Shaoxing rhythm groups (SB, AFIB, GSVT, SR), single-label."""

    BUILDER_CONFIG_CLASS = ChapmanConfig
    BUILDER_CONFIGS = [ChapmanConfig(name="chapman", task="chapman", version=_VERSION)]
    DEFAULT_CONFIG_NAME = "chapman"
    DATASET_NAME = "tac_ecg_chapman"
    SOURCE = "Chapman"

    def _records(self, split: str) -> Iterator[ECGRecord]:
        cfg = self.config
        return read_chapman(
            cfg.data_dir, split=split, fractions=cfg.split_fractions, seed=cfg.split_seed,
            signal_dir=cfg.signal_dir, diagnostics_file=cfg.diagnostics_file, units=cfg.units,
            limit=cfg.max_records, on_error=cfg.on_error,
        )


#: name accepted by :func:`load_ecg_dataset` -> (builder class, config name)
BUILDERS: dict[str, tuple[type[_ECGBuilder], str]] = {
    "ptbxl-super": (PTBXLBuilder, "ptbxl-super"),
    "ptbxl": (PTBXLBuilder, "ptbxl-super"),
    "cpsc2018": (CPSC2018Builder, "cpsc2018"),
    "cinc2017": (CinC2017Builder, "cinc2017"),
    "chapman": (ChapmanBuilder, "chapman"),
    "ptbxl-cetp": (PTBXLCETPBuilder, "ptbxl-cetp"),
    "cetp": (PTBXLCETPBuilder, "ptbxl-cetp"),
}


def get_builder(task_or_name: str, data_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None, **config: Any) -> _ECGBuilder:
    """Instantiate the builder for a task or dataset name (see :data:`BUILDERS`) without preparing it."""
    try:
        builder_cls, config_name = BUILDERS[task_or_name]
    except KeyError:
        raise KeyError(f"Unknown ECG dataset {task_or_name!r}; known: {', '.join(BUILDERS)}.") from None
    return builder_cls(
        config_name=config_name,
        data_dir=data_dir,
        cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        **config,
    )


def load_ecg_dataset(
    task_or_name: str,
    data_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    *,
    download_mode: str | None = None,
    **config: Any,
) -> datasets.DatasetDict:
    """Build (or reuse from cache) and load a preprocessed ECG dataset as a ``DatasetDict``.

    Args:
        task_or_name: ``"ptbxl-super"`` (or ``"ptbxl"``), ``"cpsc2018"``, ``"cinc2017"``, ``"chapman"``,
            ``"ptbxl-cetp"`` (or ``"cetp"``).
        data_dir: local folder with the dataset in its original layout.
        cache_dir: where the Arrow files go; default the Hugging Face datasets cache
            (``$HF_DATASETS_CACHE``, ``~/.cache/huggingface/datasets``).
        download_mode: e.g. ``"force_redownload"`` to rebuild.
        **config: builder config fields, e.g. ``max_records=50``, ``num_samples=2500``, ``sampling_rate=250``,
            ``array_file="ptbxl_1519_100hz_f16.npz"``, ``split_seed=1``, ``on_error="raise"``.
    """
    builder = get_builder(task_or_name, data_dir, cache_dir, **config)
    try:
        builder.download_and_prepare(download_mode=download_mode)
    except datasets.exceptions.DatasetGenerationError as exc:
        # surface our own error (record id, problem, fix) instead of datasets' generic wrapper
        if isinstance(exc.__cause__, ECGInputError):
            raise exc.__cause__ from None
        raise
    return _as_dataset_dict(builder)


def _as_dataset_dict(builder: _ECGBuilder) -> datasets.DatasetDict:
    """``builder.as_dataset()``, except that empty splits (tiny datasets) become empty ``Dataset``s with
    the right features instead of making ``datasets`` raise "corresponds to no data"."""
    out = datasets.DatasetDict()
    for split in SPLITS:
        info = builder.info.splits.get(split) if builder.info.splits else None
        if info is not None and info.num_examples > 0:
            out[split] = builder.as_dataset(split=split)
        else:
            warnings.warn(
                f"{builder.SOURCE} ({builder.config.name}): the {split!r} split is empty "
                f"(data_dir {builder.config.data_dir}).",
                UserWarning,
                stacklevel=3,
            )
            features = builder.info.features
            out[split] = datasets.Dataset.from_dict({name: [] for name in features}, features=features, split=split)
    return out


def load_cetp_pairs(
    data_dir: str | os.PathLike,
    text_source: str = "report",
    cache_dir: str | os.PathLike | None = None,
    **config: Any,
) -> datasets.DatasetDict:
    """PTB-XL ECG-text pairs (``input_values``, ``text``, ``record_id``) split by ``strat_fold``."""
    return load_ecg_dataset("ptbxl-cetp", data_dir, cache_dir, text_source=text_source, **config)
