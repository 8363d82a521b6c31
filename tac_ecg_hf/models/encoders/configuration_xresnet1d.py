"""Configuration of XResNet1d (TAC-ECG's own encoder: xresnet1d101, kernel-3 bottlenecks, 64x4 widths)."""

from .configuration_ecg_base import MAX_DEPTH, MAX_KERNEL_SIZE, MAX_WIDTH, ECGEncoderConfig, as_list


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
        self.layers = as_list(self.layers, [3, 4, 23, 3])
        default_widths = [64] * len(self.layers) if isinstance(self.layers, list) else None
        self.block_widths = as_list(self.block_widths, default_widths)
        self.stem_widths = as_list(self.stem_widths, [32, 32, 64])
        super().__post_init__(**kwargs)

    def _validate(self) -> None:
        super()._validate()
        self._check_int_list("layers", self.layers, 1, MAX_DEPTH)
        self._check_int_list("stem_widths", self.stem_widths, 1, MAX_WIDTH, max_len=16)
        if sum(self.layers) + len(self.stem_widths) > MAX_DEPTH:
            raise self._error(
                f"layers {self.layers} give {sum(self.layers):,} blocks; at most {MAX_DEPTH:,} are supported."
            )
        self._check_int("expansion", self.expansion, 1, 64)
        max_width = MAX_WIDTH // self.expansion  # the block output, width * expansion, is bounded
        self._check_int_list("block_widths", self.block_widths, 1, max_width, max_len=len(self.layers))
        if len(self.block_widths) != len(self.layers):
            raise self._error(
                f"block_widths ({len(self.block_widths)}) and layers ({len(self.layers)}) must have the same length."
            )
        self._check_int("kernel_size", self.kernel_size, 1, MAX_KERNEL_SIZE, odd=True)

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
