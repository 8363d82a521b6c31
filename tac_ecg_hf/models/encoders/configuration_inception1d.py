"""Configuration of Inception1d (InceptionTime-style encoder from the PTB-XL benchmark)."""

from .configuration_ecg_base import ECGEncoderConfig


class Inception1dConfig(ECGEncoderConfig):
    r"""
    Inception1d: ``depth`` inception blocks, each a 1x1 bottleneck followed by parallel convs of
    ``kernel_sizes`` plus a max-pool branch (``4 * num_filters`` output channels, BatchNorm + ReLU after
    the concatenation) and a residual shortcut every ``residual_every`` blocks.
    """

    model_type = "inception1d"

    depth: int = 6
    num_filters: int = 32
    bottleneck_size: int = 32
    kernel_sizes: list[int] | None = None
    residual_every: int = 3

    def __post_init__(self, **kwargs):
        self.kernel_sizes = list(self.kernel_sizes) if self.kernel_sizes is not None else [39, 19, 9]
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"Inception1dConfig: kernel_sizes must be odd, got {self.kernel_sizes}.")
        super().__post_init__(**kwargs)

    @property
    def block_channels(self) -> int:
        return self.num_filters * (len(self.kernel_sizes) + 1)

    @property
    def feature_size(self) -> int:
        return 2 * self.block_channels if self.pooling == "avgmax" else self.block_channels

    def _architecture_fields(self):
        return {"depth": self.depth, "num_filters": self.num_filters, "kernel_sizes": self.kernel_sizes}
