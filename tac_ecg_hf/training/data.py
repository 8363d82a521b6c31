"""The training data of a task: its feature extractor, every source in one label space, cross-validation splits,
label fractions and the transforms."""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import TrainerCallback

from ..tasks import get_task
from .arguments import DataArguments

# ----------------------------------------------------------------------------------------------------------------
# feature extractors and data


def task_feature_extractor(task: str, base_extractor):
    """The feature extractor a task reads its input with: the encoder's, restricted to the task's leads (a single-lead
    task reads lead I of the 12-lead encoder; the other leads stay zero, as the adapter is trained)."""
    from ..data.feature_extraction_ecg import ECGFeatureExtractor

    spec = get_task(task)
    settings = base_extractor.settings()
    if tuple(spec.source_leads) != tuple(settings["lead_names"]):
        settings["input_leads"] = list(spec.source_leads)
    return ECGFeatureExtractor(**settings)


def load_base_extractor(base_model: str | None):
    """The feature extractor saved with an encoder (default for training from scratch: 12 leads, 100 Hz, 10 s,
    0.5-40 Hz, like the PTB-XL training arrays)."""
    from ..data.feature_extraction_ecg import ECGFeatureExtractor

    if base_model is None:
        return ECGFeatureExtractor()
    from ..inference import load_feature_extractor, resolve_model

    return load_feature_extractor(resolve_model(base_model))


def stratify_key(example_labels: Any) -> str:
    """A stratification key: the class id, or the multi-hot pattern."""
    if isinstance(example_labels, (list, tuple, np.ndarray)):
        return "".join("1" if v > 0.5 else "0" for v in example_labels)
    return str(int(example_labels))


def kfold_assignment(keys: list[str], k: int, seed: int = 0) -> np.ndarray:
    """Stratified fold ids 0..k-1 (scikit-learn's ``StratifiedKFold``; rare multi-label patterns are pooled so that
    every stratum has at least k members)."""
    from collections import Counter

    from sklearn.model_selection import StratifiedKFold

    counts = Counter(keys)
    pooled = [key if counts[key] >= k else "rare" for key in keys]
    if Counter(pooled)["rare"] and Counter(pooled)["rare"] < k:
        pooled = [key if key != "rare" else max(counts, key=counts.get) for key in pooled]
    folds = np.zeros(len(keys), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(keys)), pooled)):
        folds[test] = fold
    return folds


def cross_validation_split(dataset, k: int, fold: int, seed: int = 0):
    """Re-split a ``DatasetDict`` for fold ``fold`` of a k-fold CV: test fold ``fold``, validation fold ``fold-1``,
    training the rest. PTB-XL records keep their official, patient-wise ``strat_fold``: with ``k=10`` that is TAC-ECG's
    protocol (test fold ``fold+1``, validation the one before); with other ``k`` the strat_folds are grouped
    (``(strat_fold - 1) % k``). The other records are split by stratified k-fold over all their splits."""
    import datasets as hf_datasets

    pool = hf_datasets.concatenate_datasets([dataset[s] for s in dataset])
    strat = np.asarray(pool["fold"])
    fold_of = np.where(strat >= 1, (strat - 1) % k, -1)
    others = np.flatnonzero(strat < 1).tolist()
    if others and "labels" in pool.column_names:
        labels = pool.select(others)["labels"]
        fold_of[others] = kfold_assignment([stratify_key(y) for y in labels], k, seed)
    elif others:  # ECG-text pairs carry no labels: a deterministic random assignment
        fold_of[others] = np.random.default_rng(seed).permutation(len(others)) % k
    validation = (fold - 1) % k
    index = {
        "train": np.flatnonzero((fold_of != fold) & (fold_of != validation)),
        "validation": np.flatnonzero(fold_of == validation),
        "test": np.flatnonzero(fold_of == fold),
    }
    return hf_datasets.DatasetDict({s: pool.select(i.tolist()) for s, i in index.items()})


def subsample(dataset, fraction: float, seed: int = 0):
    """A stratified ``fraction`` of a split (label-efficiency runs); at least one record per stratum."""
    if fraction >= 1:
        return dataset
    rng = np.random.default_rng(seed)
    keys = [stratify_key(y) for y in dataset["labels"]]
    chosen = []
    for key in sorted(set(keys)):
        members = [i for i, k in enumerate(keys) if k == key]
        n = max(1, int(round(fraction * len(members))))
        chosen += rng.choice(members, size=n, replace=False).tolist()
    return dataset.select(sorted(chosen))


class TransformEpochCallback(TrainerCallback):
    """Tells the training set's :class:`~tac_ecg_hf.data.builders.ECGTransform` which epoch begins, so that its
    per-example random crops and augmentations change from epoch to epoch and a run resumed mid-epoch repeats them
    exactly. (Workers of a ``DataLoader`` with ``persistent_workers`` would keep the epoch they started with.)"""

    def __init__(self, *transforms):
        self.transforms = transforms

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch counts epochs as a float: whole at the start of an epoch, inside it when resuming mid-way
        for transform in self.transforms:
            transform.epoch = int(state.epoch or 0)


def task_datasets(data_args: DataArguments, feature_extractor, seed: int = 0):
    """The task's ``DatasetDict`` (every source, one label space), re-split for CV and subsampled as asked, with the
    feature extractor's transforms set (random crops and augmentation for training, the centre window otherwise), and
    the training transform (for :class:`TransformEpochCallback`)."""
    from ..data.augment import ECGAugment
    from ..data.builders import ECGTransform, load_task_dataset

    dataset = load_task_dataset(
        data_args.task,
        data_args.data_dir,
        sources=data_args.source_list,
        feature_extractor=feature_extractor,
        cache_dir=data_args.cache_dir,
        max_records=data_args.max_records,
    )
    if data_args.cv_folds:
        dataset = cross_validation_split(dataset, data_args.cv_folds, data_args.cv_fold, seed=seed)
    dataset["train"] = subsample(dataset["train"], data_args.label_fraction, seed=seed)
    augment = ECGAugment() if data_args.augment else None
    train_transform = ECGTransform(feature_extractor, train=True, augment=augment, seed=seed)
    dataset["train"].set_transform(train_transform)
    for split in ("validation", "test"):
        dataset[split].set_transform(ECGTransform(feature_extractor, train=False))
    return dataset, train_transform
