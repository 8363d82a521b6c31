"""Configuration of Inception1d (InceptionTime-style encoder from the PTB-XL benchmark)."""

from .configuration_ecg_base import MAX_DEPTH, MAX_KERNEL_SIZE, MAX_WIDTH, ECGEncoderConfig, as_list


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
        self.kernel_sizes = as_list(self.kernel_sizes, [39, 19, 9])
        super().__post_init__(**kwargs)

    def _validate(self) -> None:
        super()._validate()
        self._check_int("depth", self.depth, 1, MAX_DEPTH)
        self._check_int_list("kernel_sizes", self.kernel_sizes, 1, MAX_KERNEL_SIZE, odd=True, max_len=16)
        self._check_int("num_filters", self.num_filters, 1, MAX_WIDTH // (len(self.kernel_sizes) + 1))
        self._check_int("bottleneck_size", self.bottleneck_size, 1, MAX_WIDTH)
        self._check_int("residual_every", self.residual_every, 1, MAX_DEPTH)

    @property
    def block_channels(self) -> int:
        return self.num_filters * (len(self.kernel_sizes) + 1)

    @property
    def feature_size(self) -> int:
        return 2 * self.block_channels if self.pooling == "avgmax" else self.block_channels

    def _architecture_fields(self):
        return {"depth": self.depth, "num_filters": self.num_filters, "kernel_sizes": self.kernel_sizes}
