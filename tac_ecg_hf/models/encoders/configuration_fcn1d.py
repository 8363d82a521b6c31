"""Configuration of FCN1d (fully convolutional network of Wang et al., 2017)."""

from .configuration_ecg_base import MAX_DEPTH, MAX_KERNEL_SIZE, MAX_WIDTH, ECGEncoderConfig, as_list


class FCN1dConfig(ECGEncoderConfig):
    r"""FCN: a stack of Conv-BN-ReLU layers with ``widths`` and ``kernel_sizes`` followed by global pooling."""

    model_type = "fcn1d"

    widths: list[int] | None = None
    kernel_sizes: list[int] | None = None

    def __post_init__(self, **kwargs):
        self.widths = as_list(self.widths, [128, 256, 128])
        self.kernel_sizes = as_list(self.kernel_sizes, [7, 5, 3])
        super().__post_init__(**kwargs)

    def _validate(self) -> None:
        super()._validate()
        self._check_int_list("widths", self.widths, 1, MAX_WIDTH, max_len=MAX_DEPTH)
        self._check_int_list("kernel_sizes", self.kernel_sizes, 1, MAX_KERNEL_SIZE, odd=True, max_len=MAX_DEPTH)
        if len(self.widths) != len(self.kernel_sizes):
            raise self._error("widths and kernel_sizes must have the same length.")

    @property
    def feature_size(self) -> int:
        return 2 * self.widths[-1] if self.pooling == "avgmax" else self.widths[-1]

    def _architecture_fields(self):
        return {"widths": self.widths, "kernel_sizes": self.kernel_sizes}
