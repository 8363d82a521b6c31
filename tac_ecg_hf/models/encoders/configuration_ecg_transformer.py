"""Configuration of ECGTransformer (conv stem + transformer encoder)."""

from .configuration_ecg_base import ECGEncoderConfig


class ECGTransformerConfig(ECGEncoderConfig):
    r"""
    A small transformer: a conv stem (``len(stem_strides)`` Conv-BN-ReLU layers, kernel 3) that downsamples
    time, sinusoidal positions, then ``num_hidden_layers`` pre-norm transformer encoder layers.
    """

    model_type = "ecg_transformer"

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 256
    dropout: float = 0.1
    stem_strides: list[int] | None = None

    def __post_init__(self, **kwargs):
        self.stem_strides = list(self.stem_strides) if self.stem_strides is not None else [2, 2]
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("ECGTransformerConfig: hidden_size must be divisible by num_attention_heads.")
        if self.hidden_size % 2:
            raise ValueError("ECGTransformerConfig: hidden_size must be even (sinusoidal positions).")
        super().__post_init__(**kwargs)

    @property
    def feature_size(self) -> int:
        return 2 * self.hidden_size if self.pooling == "avgmax" else self.hidden_size

    def _architecture_fields(self):
        return {
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "stem_strides": self.stem_strides,
        }
