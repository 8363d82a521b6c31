"""Configuration of ResNet1d (ResNet18-style 1D encoder)."""

from .configuration_ecg_base import ECGEncoderConfig


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
        self.layers = list(self.layers) if self.layers is not None else [2, 2, 2, 2]
        if self.kernel_size % 2 == 0 or self.stem_kernel_size % 2 == 0:
            raise ValueError("ResNet1dConfig: kernel sizes must be odd.")
        super().__post_init__(**kwargs)

    @property
    def stage_widths(self) -> list[int]:
        return [self.base_width * 2**i for i in range(len(self.layers))]

    @property
    def feature_size(self) -> int:
        width = self.stage_widths[-1]
        return 2 * width if self.pooling == "avgmax" else width

    def _architecture_fields(self):
        return {"layers": self.layers, "base_width": self.base_width, "kernel_size": self.kernel_size}
