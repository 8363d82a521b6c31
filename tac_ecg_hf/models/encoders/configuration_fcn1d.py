"""Configuration of FCN1d (fully convolutional network of Wang et al., 2017)."""

from .configuration_ecg_base import ECGEncoderConfig


class FCN1dConfig(ECGEncoderConfig):
    r"""FCN: a stack of Conv-BN-ReLU layers with ``widths`` and ``kernel_sizes`` followed by global pooling."""

    model_type = "fcn1d"

    widths: list[int] | None = None
    kernel_sizes: list[int] | None = None

    def __post_init__(self, **kwargs):
        self.widths = list(self.widths) if self.widths is not None else [128, 256, 128]
        self.kernel_sizes = list(self.kernel_sizes) if self.kernel_sizes is not None else [7, 5, 3]
        if len(self.widths) != len(self.kernel_sizes):
            raise ValueError("FCN1dConfig: widths and kernel_sizes must have the same length.")
        super().__post_init__(**kwargs)

    @property
    def feature_size(self) -> int:
        return 2 * self.widths[-1] if self.pooling == "avgmax" else self.widths[-1]

    def _architecture_fields(self):
        return {"widths": self.widths, "kernel_sizes": self.kernel_sizes}
