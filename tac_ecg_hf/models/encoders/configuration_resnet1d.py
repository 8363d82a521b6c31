"""Configuration of ResNet1d (ResNet18-style 1D encoder)."""

from .configuration_ecg_base import MAX_DEPTH, MAX_KERNEL_SIZE, MAX_WIDTH, ECGEncoderConfig, as_list
from .limits import resnet1d_stage_widths


class ResNet1dConfig(ECGEncoderConfig):
    r"""
    ResNet18-style 1D encoder: a strided stem conv + max-pool, then ``len(layers)`` stages of basic blocks
    (two kernel-``kernel_size`` convs) with widths ``base_width * 2**stage``.

    Example:
        >>> from tac_ecg_hf import ResNet1dConfig, ResNet1dModel
        >>> model = ResNet1dModel(ResNet1dConfig(base_width=32))
    """

    model_type = "resnet1d"

    layers: list[int] | None = None
    base_width: int = 64
    kernel_size: int = 3
    stem_kernel_size: int = 7

    def __post_init__(self, **kwargs):
        self.layers = as_list(self.layers, [2, 2, 2, 2])
        super().__post_init__(**kwargs)

    def _validate(self) -> None:
        super()._validate()
        self._check_int_list("layers", self.layers, 1, MAX_DEPTH, max_len=16)
        if sum(self.layers) > MAX_DEPTH:
            raise self._error(
                f"layers {self.layers} give {sum(self.layers):,} blocks; at most {MAX_DEPTH:,} are supported."
            )
        self._check_int("base_width", self.base_width, 1, MAX_WIDTH)
        if self.stage_widths[-1] > MAX_WIDTH:
            raise self._error(
                f"base_width={self.base_width} with {len(self.layers)} stages gives a last stage of "
                f"{self.stage_widths[-1]:,} channels; at most {MAX_WIDTH:,} are supported."
            )
        self._check_int("kernel_size", self.kernel_size, 1, MAX_KERNEL_SIZE, odd=True)
        self._check_int("stem_kernel_size", self.stem_kernel_size, 1, MAX_KERNEL_SIZE, odd=True)

    @property
    def stage_widths(self) -> list[int]:
        return resnet1d_stage_widths(self.base_width, len(self.layers))

    @property
    def feature_size(self) -> int:
        width = self.stage_widths[-1]
        return 2 * width if self.pooling == "avgmax" else width

    def _architecture_fields(self):
        return {"layers": self.layers, "base_width": self.base_width, "kernel_size": self.kernel_size}
