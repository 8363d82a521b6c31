"""Fields shared by every ECG encoder configuration in tac-ecg-hf.

This file is copied next to a saved checkpoint (``trust_remote_code``), so it only imports
``transformers`` and relative modules.
"""

from transformers import PreTrainedConfig

STANDARD_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


class ECGEncoderConfig(PreTrainedConfig):
    r"""
    Base configuration of a 1D ECG encoder taking ``input_values`` of shape ``(batch, leads, samples)``.

    Args:
        in_channels (`int`): number of leads the encoder reads.
        lead_names (`list[str]`): the leads, in the order the encoder expects them.
        sampling_rate (`int`): sampling rate in Hz the encoder was trained at.
        num_samples (`int`): window length in samples the encoder was trained with.
        classifier_dropout (`float`): dropout before the classification head.
        pooling (`str`): ``"avgmax"`` (concatenated average and max pooling) or ``"avg"``.
        initializer_range (`float`): std of the normal init of linear layers.
    """

    model_type = "ecg_encoder"

    in_channels: int = 12
    lead_names: list[str] | None = None
    sampling_rate: int = 100
    num_samples: int = 1000
    classifier_dropout: float = 0.1
    pooling: str = "avgmax"
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.lead_names is None:
            self.lead_names = list(STANDARD_LEADS[: self.in_channels]) if self.in_channels <= 12 else None
        if self.lead_names is not None:
            self.lead_names = list(self.lead_names)
            if len(self.lead_names) != self.in_channels:
                raise ValueError(
                    f"{type(self).__name__}: lead_names has {len(self.lead_names)} names but in_channels={self.in_channels}; "
                    "give one name per input lead."
                )
        if self.pooling not in ("avgmax", "avg"):
            raise ValueError(f"{type(self).__name__}: pooling must be 'avgmax' or 'avg', got {self.pooling!r}.")
        for name, value in self._positive_int_fields().items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive integer, got {value!r}.")
        super().__post_init__(**kwargs)

    def _positive_int_fields(self):
        return {"in_channels": self.in_channels, "sampling_rate": self.sampling_rate, "num_samples": self.num_samples}

    @property
    def feature_size(self) -> int:
        """Width of the pooled embedding returned as ``pooler_output``."""
        raise NotImplementedError

    def encoder_signature(self) -> dict:
        """What an adapter must match to be loaded on this encoder."""
        return {
            "model_type": self.model_type,
            "in_channels": self.in_channels,
            "feature_size": self.feature_size,
            "architecture": self._architecture_fields(),
        }

    def _architecture_fields(self) -> dict:
        return {}
