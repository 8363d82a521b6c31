"""Configuration of LSTM1d (uni- or bidirectional LSTM encoder)."""

from .configuration_ecg_base import ECGEncoderConfig


class LSTM1dConfig(ECGEncoderConfig):
    r"""A stacked (bi-)LSTM over time; ``bidirectional=True`` gives the bi-LSTM baseline."""

    model_type = "lstm1d"

    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.1

    @property
    def feature_size(self) -> int:
        width = self.hidden_size * (2 if self.bidirectional else 1)
        return 2 * width if self.pooling == "avgmax" else width

    def _architecture_fields(self):
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "bidirectional": self.bidirectional}
