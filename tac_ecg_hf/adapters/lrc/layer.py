"""LRC-Adapter layers: serial (TAC-ECG), parallel mergeable low-rank conv, and per-task heads."""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional

import torch
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn

from ..lrc_core import parallel_update, serial_update
from .config import LRCConfig

#: base layers a serial adapter can follow: (type, whether its output is channel-last)
SERIAL_BASE_LAYERS = (
    (nn.modules.batchnorm._BatchNorm, False),  # (batch, channels, time)
    (nn.LayerNorm, True),  # (..., channels)
    (nn.RNNBase, True),  # LSTM/GRU: (output (..., channels), state)
)


def adapted_width(base_layer: nn.Module) -> int | None:
    """Channels of the tensor an LRC-Adapter on ``base_layer`` sees (None where none fits)."""
    if isinstance(base_layer, nn.modules.batchnorm._BatchNorm):
        return base_layer.num_features
    if isinstance(base_layer, nn.LayerNorm):
        return base_layer.normalized_shape[-1]
    if isinstance(base_layer, nn.RNNBase):
        width = base_layer.proj_size if getattr(base_layer, "proj_size", 0) else base_layer.hidden_size
        return width * (2 if base_layer.bidirectional else 1)
    if isinstance(base_layer, nn.Conv1d):  # the rank of its (out, in * kernel) weight matrix
        return min(base_layer.out_channels, base_layer.in_channels // base_layer.groups * base_layer.kernel_size[0])
    if isinstance(base_layer, nn.Linear):
        return base_layer.in_features
    return None


def _check_rank(config: LRCConfig, width: int, base_layer: nn.Module) -> None:
    if config.r > width:
        raise ValueError(
            f"LRCConfig.r={config.r} exceeds the width {width} of a {type(base_layer).__name__} it adapts; a low-rank "
            f"bottleneck needs r <= {width}: lower r or exclude that module (exclude_modules=[...])."
        )


class LRCLayer(BaseTunerLayer):
    adapter_layer_names = ("lrc_down", "lrc_up", "lrc_head")
    other_param_names = ("lrc_scaling", "lrc_dropout")

    def __init__(self, base_layer: nn.Module, **kwargs) -> None:
        self.base_layer = base_layer
        self.lrc_down = nn.ModuleDict()
        self.lrc_up = nn.ModuleDict()
        self.lrc_head = nn.ModuleDict()
        self.lrc_dropout = nn.ModuleDict()
        self.lrc_scaling: dict[str, float] = {}
        self._disable_adapters = False
        self.merged_adapters = []

    def _finish_update(self, adapter_name: str, config: LRCConfig) -> None:
        self.lrc_scaling[adapter_name] = config.scaling
        self.lrc_dropout[adapter_name] = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    def _active(self) -> list[str]:
        return [a for a in self.active_adapters if a in self.lrc_down]

    def unmerge(self) -> None:
        if not self.merged:
            warnings.warn("Already unmerged. Nothing to do.")
            return
        self._unmerge()

    def _unmerge(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return "lrc." + super().__repr__()


class LRCSerial(nn.Module, LRCLayer):
    """The TAC-ECG adapter after a normalisation or recurrent layer: ``y = base(x); y + s * up(ReLU(down(y)))``.

    ``down``/``up`` act on the channels at each time step (rank ``r``): 1x1 convs after a ``BatchNorm1d`` (channels
    in dim 1), linear layers after a ``LayerNorm`` or an ``nn.LSTM``/``nn.GRU`` layer (channels last). A recurrent
    layer returns ``(output, state)``: the output is adapted, the state passed through.
    """

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: LRCConfig, **kwargs) -> None:
        super().__init__()
        LRCLayer.__init__(self, base_layer)
        base = self.get_base_layer()
        layout = next((last for cls, last in SERIAL_BASE_LAYERS if isinstance(base, cls)), None)
        if layout is None:
            raise ValueError(
                "A serial LRC-Adapter follows a BatchNorm1d, LayerNorm or LSTM/GRU layer, "
                f"not a {type(base).__name__}."
            )
        self.channels_last = layout
        self.channels = adapted_width(base)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def update_layer(self, adapter_name: str, config: LRCConfig) -> None:
        _check_rank(config, self.channels, self.get_base_layer())
        if self.channels_last:
            down, up = nn.Linear(self.channels, config.r), nn.Linear(config.r, self.channels)
        else:  # 1x1 convs keep the tensor layout (batch, channels, time); bundled adapters store these shapes
            down, up = nn.Conv1d(self.channels, config.r, 1), nn.Conv1d(config.r, self.channels, 1)
        nn.init.kaiming_uniform_(down.weight, a=math.sqrt(5))
        nn.init.zeros_(down.bias)
        if config.init_weights:
            nn.init.zeros_(up.weight)
        nn.init.zeros_(up.bias)
        self.lrc_down[adapter_name] = down
        self.lrc_up[adapter_name] = up
        self._finish_update(adapter_name, config)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any):
        return self.adapt_base_output(self.base_layer(x, *args, **kwargs))

    def adapt_base_output(self, result):
        """The active adapters applied to an output of the base layer: ``forward`` without the base layer, for an
        encoder block that computes the base layer's output another way (``ConvBnAct1d`` folds a frozen BatchNorm
        into the conv before it)."""
        if self.disable_adapters:
            return result
        y = result[0] if isinstance(result, tuple) else result
        for name in self._active():
            y = serial_update(y, self.lrc_down[name], self.lrc_up[name], self.lrc_scaling[name],
                              dropout=self.lrc_dropout[name])
        return (y, *result[1:]) if isinstance(result, tuple) else y

    def merge(self, safe_merge: bool = False, adapter_names: Optional[list[str]] = None) -> None:
        if any(name in self.lrc_down for name in check_adapters_to_merge(self, adapter_names)):
            raise ValueError(
                "The serial LRC-Adapter has a ReLU inside its bottleneck, so it cannot be folded into the frozen "
                "weights. Use LRCConfig(variant='parallel') for a mergeable adapter."
            )

    def _unmerge(self) -> None:  # never merged (merge raises)
        pass


class LRCParallel(nn.Module, LRCLayer):
    """Wraps a Conv1d: ``conv(x) + s * B(A(x))``, A a rank-r conv with the base kernel/stride/padding/dilation."""

    def __init__(self, base_layer: nn.Conv1d, adapter_name: str, config: LRCConfig, **kwargs) -> None:
        super().__init__()
        LRCLayer.__init__(self, base_layer)
        base = self.get_base_layer()
        if base.groups != 1:
            raise ValueError(
                f"LRC parallel variant supports Conv1d with groups=1 only, got groups={base.groups}; "
                "exclude this module with LRCConfig(exclude_modules=[...])."
            )
        if base.padding_mode != "zeros":
            raise ValueError(f"LRC parallel variant supports zero padding only, got {base.padding_mode!r}.")
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def update_layer(self, adapter_name: str, config: LRCConfig) -> None:
        base = self.get_base_layer()
        _check_rank(config, adapted_width(base), base)
        self.lrc_down[adapter_name] = nn.Conv1d(
            base.in_channels,
            config.r,
            base.kernel_size,
            stride=base.stride,
            padding=base.padding,
            dilation=base.dilation,
            bias=False,
        )
        self.lrc_up[adapter_name] = nn.Conv1d(config.r, base.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(self.lrc_down[adapter_name].weight, a=math.sqrt(5))
        if config.init_weights:
            nn.init.zeros_(self.lrc_up[adapter_name].weight)
        self._finish_update(adapter_name, config)

    def get_delta_weight(self, adapter_name: str) -> torch.Tensor:
        down = self.lrc_down[adapter_name].weight  # (r, in, k)
        up = self.lrc_up[adapter_name].weight[:, :, 0]  # (out, r)
        return self.lrc_scaling[adapter_name] * torch.einsum("or,rik->oik", up, down)

    def merge(self, safe_merge: bool = False, adapter_names: Optional[list[str]] = None) -> None:
        adapter_names = check_adapters_to_merge(self, adapter_names)
        base = self.get_base_layer()
        for name in adapter_names:
            if name not in self.lrc_down:
                continue
            delta = self.get_delta_weight(name).to(base.weight.dtype)
            if safe_merge:
                merged = base.weight.data + delta
                if not torch.isfinite(merged).all():
                    raise ValueError(f"NaNs detected in the merged weights of adapter {name!r}; not merged.")
                base.weight.data = merged
            else:
                base.weight.data += delta
            self.merged_adapters.append(name)

    def _unmerge(self) -> None:
        base = self.get_base_layer()
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            if name in self.lrc_down:
                base.weight.data -= self.get_delta_weight(name).to(base.weight.dtype)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        out = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return out
        for name in self._active():
            out = parallel_update(out, self.lrc_dropout[name](x), self.lrc_down[name], self.lrc_up[name],
                                  self.lrc_scaling[name])
        return out


class LRCHead(nn.Module, LRCLayer):
    """Replaces the classifier Linear with one head per task adapter (each task has its own label count)."""

    def __init__(self, base_layer: nn.Linear, adapter_name: str, config: LRCConfig, **kwargs) -> None:
        super().__init__()
        LRCLayer.__init__(self, base_layer)
        self.in_features = self.get_base_layer().in_features
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def update_layer(self, adapter_name: str, config: LRCConfig) -> None:
        num_labels = len(config.labels) if config.labels else self.get_base_layer().out_features
        head = nn.Linear(self.in_features, num_labels)
        nn.init.normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
        self.lrc_head[adapter_name] = head
        self._finish_update(adapter_name, config)

    def _active(self) -> list[str]:
        return [a for a in self.active_adapters if a in self.lrc_head]

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            return self.base_layer(x, *args, **kwargs)
        active = self._active()
        if len(active) != 1:
            raise ValueError(
                f"Exactly one task adapter must be active to classify, got {active}; call model.set_adapter('<task>')."
            )
        return self.lrc_head[active[0]](x)

    def merge(self, safe_merge: bool = False, adapter_names: Optional[list[str]] = None) -> None:
        raise ValueError(
            "A task head replaces the classifier, it is not added to it, so there is nothing to merge: "
            "LRCModel.merge_and_unload() keeps the active task's head as the classifier, and merge_adapter() "
            "merges the encoder adapters only."
        )

    def _unmerge(self) -> None:  # never merged (merge raises)
        pass
