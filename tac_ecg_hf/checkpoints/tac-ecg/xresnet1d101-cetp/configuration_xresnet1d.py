"""Configuration of XResNet1d (TAC-ECG's own encoder: xresnet1d101, kernel-3 bottlenecks, 64x4 widths)."""

from .configuration_ecg_base import ECGEncoderConfig


class XResNet1dConfig(ECGEncoderConfig):
    r"""
    XResNet1d as used for PTB-XL (Strodthoff et al.) and TAC-ECG: a fastai-style XResNet with a 3-conv stem,
    bottleneck blocks of width ``block_widths[i]`` and ``expansion`` (output ``block_widths[i] * expansion``),
    average-pool shortcuts for strided blocks. ``xresnet1d101`` is ``layers=[3, 4, 23, 3]``, widths 64 x 4 stages.

    Example:
        >>> from tac_ecg_hf import XResNet1dConfig, XResNet1dModel
        >>> model = XResNet1dModel(XResNet1dConfig())  # xresnet1d101, about 1.5M parameters
    """

    model_type = "xresnet1d"

    layers: list[int] | None = None
    block_widths: list[int] | None = None
    stem_widths: list[int] | None = None
    expansion: int = 4
    kernel_size: int = 3

    def __post_init__(self, **kwargs):
        self.layers = list(self.layers) if self.layers is not None else [3, 4, 23, 3]
        self.block_widths = list(self.block_widths) if self.block_widths is not None else [64] * len(self.layers)
        self.stem_widths = list(self.stem_widths) if self.stem_widths is not None else [32, 32, 64]
        if len(self.block_widths) != len(self.layers):
            raise ValueError(
                f"XResNet1dConfig: block_widths ({len(self.block_widths)}) and layers ({len(self.layers)}) must have the same length."
            )
        if self.kernel_size % 2 == 0:
            raise ValueError(f"XResNet1dConfig: kernel_size must be odd, got {self.kernel_size}.")
        super().__post_init__(**kwargs)

    @property
    def feature_size(self) -> int:
        width = self.block_widths[-1] * self.expansion
        return 2 * width if self.pooling == "avgmax" else width

    def _architecture_fields(self):
        return {
            "layers": self.layers,
            "block_widths": self.block_widths,
            "stem_widths": self.stem_widths,
            "expansion": self.expansion,
            "kernel_size": self.kernel_size,
        }
