"""Configuration of LSTM1d (uni- or bidirectional LSTM encoder)."""

from .configuration_ecg_base import MAX_DEPTH, MAX_WIDTH, ECGEncoderConfig


class LSTM1dConfig(ECGEncoderConfig):
    r"""A stack of ``num_layers`` (bi-)LSTM layers over time; ``bidirectional=True`` gives the bi-LSTM baseline.
    ``dropout`` is applied between layers (as ``nn.LSTM(dropout=...)`` does)."""

    model_type = "lstm1d"

    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.1

    def _validate(self) -> None:
        super()._validate()
        self._check_int("hidden_size", self.hidden_size, 1, MAX_WIDTH)
        self._check_int("num_layers", self.num_layers, 1, MAX_DEPTH)
        if not isinstance(self.bidirectional, bool):
            raise self._error(f"bidirectional must be true or false, got {self.bidirectional!r}.")
        self._check_fraction("dropout", self.dropout)

    @property
    def output_size(self) -> int:
        """Width of each layer's output (both directions)."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def feature_size(self) -> int:
        return 2 * self.output_size if self.pooling == "avgmax" else self.output_size

    def _architecture_fields(self):
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "bidirectional": self.bidirectional}
