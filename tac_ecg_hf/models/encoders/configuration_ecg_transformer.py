"""Configuration of ECGTransformer (conv stem + transformer encoder)."""

from .configuration_ecg_base import MAX_ATTENTION_HEADS, MAX_DEPTH, MAX_STRIDE, MAX_WIDTH, ECGEncoderConfig, as_list


class ECGTransformerConfig(ECGEncoderConfig):
    r"""
    A small transformer: a conv stem (``len(stem_strides)`` Conv-BN-ReLU layers, kernel 3) that downsamples
    time, sinusoidal positions, then ``num_hidden_layers`` pre-norm transformer encoder layers (self-attention
    with ``num_attention_heads`` heads and a GELU MLP of width ``intermediate_size``) and a final LayerNorm.
    """

    model_type = "ecg_transformer"

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 256
    dropout: float = 0.1
    stem_strides: list[int] | None = None

    def __post_init__(self, **kwargs):
        self.stem_strides = as_list(self.stem_strides, [2, 2])
        super().__post_init__(**kwargs)

    def _validate(self) -> None:
        super()._validate()
        self._check_int("hidden_size", self.hidden_size, 2, MAX_WIDTH)
        self._check_int("num_attention_heads", self.num_attention_heads, 1, MAX_ATTENTION_HEADS)
        if self.hidden_size % self.num_attention_heads:
            raise self._error(
                f"hidden_size={self.hidden_size} must be divisible by num_attention_heads={self.num_attention_heads}."
            )
        if self.hidden_size % 2:
            raise self._error(f"hidden_size must be even (sinusoidal positions), got {self.hidden_size}.")
        self._check_int("num_hidden_layers", self.num_hidden_layers, 1, MAX_DEPTH)
        self._check_int("intermediate_size", self.intermediate_size, 1, 4 * MAX_WIDTH)
        self._check_fraction("dropout", self.dropout)
        self._check_int_list("stem_strides", self.stem_strides, 1, MAX_STRIDE, max_len=16)

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
