"""Training augmentations for ECGs (CETP pre-training and adapters), applied by :class:`~tac_ecg_hf.data.ECGTransform`.

The ones the field uses for contrastive ECG pre-training: random crops of 2.5-10 s (zero-padded to the model's window,
as a short record is at inference), lead masking and lead subsets (so that single-lead input such as CinC2017's lead I
is in distribution for a 12-lead encoder), amplitude scaling and additive noise.

Scaling and noise act on the *normalised* window: the feature extractor z-scores every lead of every window, so a scale
applied before normalisation would be undone exactly; after it, a per-lead factor and Gaussian noise (in standard
deviations) perturb what the encoder actually sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ECGAugment", "LEAD_SUBSETS"]

#: lead subsets kept by the lead-subset augmentation (the rest zeroed): single lead I (CinC2017, wearables), lead II
#: (monitoring), the limb leads, the precordial leads
LEAD_SUBSETS = {
    "I": ("I",),
    "II": ("II",),
    "limb": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "precordial": ("V1", "V2", "V3", "V4", "V5", "V6"),
}


@dataclass
class ECGAugment:
    """Random augmentations of one training example.

    Args:
        crop_seconds: ``(min, max)`` duration of a random crop, or ``None`` for none; shorter than the window, the crop
            is zero-padded.
        lead_mask_prob: probability of zeroing each lead.
        lead_subset_prob: probability of keeping only one of :data:`LEAD_SUBSETS` (chosen uniformly).
        scale: ``(min, max)`` per-lead factor on the normalised window, or ``None``.
        noise_std: standard deviation of Gaussian noise on the normalised window (0: none).
    """

    crop_seconds: tuple[float, float] | None = (2.5, 10.0)
    lead_mask_prob: float = 0.1
    lead_subset_prob: float = 0.2
    scale: tuple[float, float] | None = (0.9, 1.1)
    noise_std: float = 0.05

    def __post_init__(self):
        for name in ("lead_mask_prob", "lead_subset_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"ECGAugment.{name} must be a probability, got {getattr(self, name)!r}.")
        if self.crop_seconds is not None and not 0 < self.crop_seconds[0] <= self.crop_seconds[1]:
            raise ValueError(
                f"ECGAugment.crop_seconds must be (min, max) with 0 < min <= max, got {self.crop_seconds!r}."
            )
        if self.noise_std < 0:
            raise ValueError(f"ECGAugment.noise_std must be >= 0, got {self.noise_std!r}.")

    def before_window(self, prepared, fe, rng: np.random.Generator):
        """A random crop of the prepared record (at the model's sampling rate)."""
        if self.crop_seconds is None:
            return prepared
        n = prepared.num_samples
        length = int(round(rng.uniform(*self.crop_seconds) * fe.sampling_rate))
        length = max(1, min(length, n, fe.num_samples))
        start = int(rng.integers(0, n - length + 1))
        return type(prepared)(signal=prepared.signal[:, start : start + length], record_id=prepared.record_id)

    def after_window(self, window: np.ndarray, fe, rng: np.random.Generator) -> np.ndarray:
        """Lead subsets and masking, scaling and noise on the normalised window ``(leads, samples)``."""
        window = window.copy()
        leads = list(fe.lead_names)
        if rng.random() < self.lead_subset_prob:
            subset = LEAD_SUBSETS[list(LEAD_SUBSETS)[int(rng.integers(len(LEAD_SUBSETS)))]]
            keep = np.array([name in subset for name in leads])
            if keep.any():
                window[~keep] = 0.0
        if self.lead_mask_prob > 0:
            mask = rng.random(len(leads)) < self.lead_mask_prob
            if mask.all():
                mask[int(rng.integers(len(leads)))] = False  # never blank every lead
            window[mask] = 0.0
        real = np.abs(window).sum(axis=1, keepdims=True) > 0  # zeroed leads and padding stay zero
        if self.scale is not None:
            window *= rng.uniform(*self.scale, size=(len(leads), 1)).astype(np.float32)
        if self.noise_std > 0:
            window += (self.noise_std * rng.standard_normal(window.shape)).astype(np.float32) * real
        return window
