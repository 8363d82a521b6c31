"""The encoders' layers in plain torch: input checks, conv blocks, pooling, the classification head, and the
networks of the XResNet1d and ResNet1d families, built from any object with the config's fields.

The transformers models (``modeling_*.py``) build their networks with these functions, and so does
``tac_ecg_hf.lite``, the command line's single prediction, which must not import transformers (its modelling code
alone takes longer to import than torch, see benchmarks/RESULTS.md): both get the same modules, the same state dict
keys and the same forward. This file is copied next to a saved checkpoint with the modelling files
(``trust_remote_code``), so it imports only torch, the standard library and ``limits.py``.
"""

import torch
from torch import nn

from .limits import resnet1d_stage_widths


def check_input_values(input_values: torch.Tensor, config) -> None:
    """Refuse inputs the encoder would silently misread, with a message saying how to fix them.

    Only shapes are checked (no device sync); NaN/inf values are caught by the feature extractor
    (``tac_ecg_hf.data.ECGPreprocessor``), which sees the record before it becomes a tensor.
    """
    if not isinstance(input_values, torch.Tensor):
        raise TypeError(f"input_values must be a torch.Tensor, got {type(input_values).__name__}.")
    if input_values.dim() == 2:
        raise ValueError(
            f"input_values has shape {tuple(input_values.shape)}; expected (batch, {config.in_channels} leads, "
            "samples). Add a batch dimension with input_values.unsqueeze(0)."
        )
    if input_values.dim() != 3:
        raise ValueError(
            f"input_values has shape {tuple(input_values.shape)}; expected (batch, {config.in_channels} leads, "
            "samples)."
        )
    leads = input_values.shape[1]
    if leads != config.in_channels:
        hint = ""
        if input_values.shape[2] == config.in_channels:
            hint = " It looks time-first: pass input_values.transpose(1, 2)."
        raise ValueError(
            f"input_values has {leads} leads in dim 1 (shape {tuple(input_values.shape)}) but this encoder reads "
            f"{config.in_channels} leads {config.lead_names}.{hint} Use tac_ecg_hf.data.ECGPreprocessor to reorder, "
            "zero-fill or select leads by name."
        )


class BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` (same parameters, buffers and state dict) with a cheaper backward where it is frozen.

    While an adapter trains behind a frozen encoder (LRC-Adapter, LoRA), each BatchNorm is in eval mode with frozen
    affine parameters, yet gradients flow through it to the adapters upstream. On CPU in float32, ``F.batch_norm``'s
    forward + backward then costs about 3x an elementwise multiply-add (10.5 vs 3.4 ms for a (32, 256, 250) tensor,
    one thread), for what is a per-channel affine map; this forward computes the map as ``input * scale + shift``.
    In bfloat16 the native kernel is as fast (5.3 vs 5.7 ms) and is kept. Training-mode statistics, inference (no
    gradient) and trainable affine parameters take ``nn.BatchNorm1d``'s own path unchanged.
    """

    def frozen_affine(
        self, input: torch.Tensor, dtypes: tuple = (torch.float32,)
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(scale, shift)`` of the per-channel map this layer is where it is frozen on a gradient path (eval mode,
        running statistics, frozen affine parameters, an ``input`` of one of ``dtypes`` requiring a gradient), else
        None."""
        if input.dtype not in dtypes or not (input.requires_grad and torch.is_grad_enabled()):
            return None
        return self.eval_affine()

    def eval_affine(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(scale, shift)`` of the per-channel map this layer computes in eval mode with running statistics, where
        no gradient for its own affine parameters is wanted (they are frozen, or gradients are off), else None."""
        if self.training or self.running_mean is None:
            return None
        if torch.is_grad_enabled() and any(p.requires_grad for p in (self.weight, self.bias) if p is not None):
            return None
        scale = torch.rsqrt(self.running_var + self.eps)
        shift = -self.running_mean * scale
        if self.weight is not None:
            scale = scale * self.weight
            shift = shift * self.weight + self.bias
        return scale, shift

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        affine = self.frozen_affine(input)
        if affine is None:
            return super().forward(input)
        scale, shift = affine
        shape = (-1,) + (1,) * (input.dim() - 2)  # (C, 1) for (N, C, L) and (C,) for (N, C)
        return input * scale.view(shape) + shift.view(shape)


def act_on_new(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(x)`` for a new tensor ``x`` that nothing else holds; in inference (gradients off) a ReLU overwrites it.

    Why: a new tensor the size of an activation costs its pages on first touch, and on this machine (a VM) a page
    fault costs about 10 us: ``x.clamp_min(0)`` of a (64, 128, 1000) float32 map took 55 ms, 3 ms into an existing
    tensor. Overwriting the input spares one such tensor per activation: xresnet1d101, 64 windows, eager float32,
    one thread: 277 -> 262 ms a forward with the ReLUs alone in place (215 ms with ``add_relu`` too), the same logits
    bit for bit. torchvision's ResNet blocks do the same (``out += identity; relu(inplace=True)``); they do it in
    training too, which is left alone here.
    """
    if isinstance(act, nn.ReLU) and not torch.is_grad_enabled():
        return torch.relu_(x)
    return act(x)


def add_relu(main: torch.Tensor, residual: torch.Tensor, act: nn.Module) -> torch.Tensor:
    """``act(main + residual)`` for a residual block, where ``main`` is the new output of the block's conv path; in
    inference with a ReLU the sum and the ReLU overwrite ``main`` (see :func:`act_on_new`). Only where ``main``
    already has the sum's dtype and shape: under autocast a float32 shortcut added to a bfloat16 path promotes to
    float32, which an in-place add would not."""
    if (
        not torch.is_grad_enabled()
        and isinstance(act, nn.ReLU)
        and main.dtype == torch.promote_types(main.dtype, residual.dtype)
        and _broadcasts_to(residual.shape, main.shape)
        and not torch.compiler.is_compiling()  # inductor fuses the add and the ReLU into one new tensor itself
    ):
        return act_on_new(act, main.add_(residual))
    return act(main + residual)


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``target`` unchanged (what ``target_tensor.add_(tensor)`` needs).
    Not ``torch.broadcast_shapes``: on first use it imports torch's reference implementations and sympy, 0.4 s of
    a single ``tac-ecg predict`` (``python -X importtime``)."""
    return len(shape) <= len(target) and all(s in (1, t) for s, t in zip(reversed(shape), reversed(target)))


class ConvBnAct1d(nn.Module):
    """Conv1d -> BatchNorm1d -> activation. Serial LRC-Adapters are inserted right after ``bn``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, act=True, zero_bn=False):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False
        )
        self.bn = BatchNorm1d(out_channels)
        self.bn.zero_init = zero_bn
        self.act = nn.ReLU(inplace=False) if act else nn.Identity()

    def forward(self, x):
        conv, bn = self.conv, self.bn
        # A frozen conv + frozen BatchNorm in eval mode runs as one conv with the folded weights ``W * scale`` and
        # bias ``shift`` in two cases:
        # * on the gradient path of an adapter training upstream, which spares the BatchNorm's pass forward and
        #   backward: an xresnet1d101 LRC-Adapter step (batch 32, one thread) took 444 -> 378 ms in float32 and
        #   392 -> 309 ms under bf16 autocast (interleaved A/B, benchmarks/RESULTS.md). A serial adapter wrapping
        #   ``bn`` (it has ``base_layer`` and ``adapt_base_output``) is applied to the folded conv's output, which is
        #   what it would have seen from ``bn``: folding those pairs too took the step 442 -> 392 ms (float32) and
        #   368 -> 328 ms (bf16) in a later A/B. Under autocast the folded weights are rounded to bfloat16 instead of
        #   the conv output being scaled in float32;
        # * in inference (gradients off), where it lets ``frozen_conv1d`` run pointwise convs as matmuls; under
        #   autocast the conv and the BatchNorm stay apart (below).
        # Where gradients are on, the pairs before the first adapter (their input needs no gradient) are left as
        # they are: folding them with matmuls made the bf16 adapter step no faster (377 vs 369 ms, interleaved A/B).
        # An adapter-wrapped ``conv`` is not folded. The result equals bn(conv(x)) up to rounding.
        base_bn = getattr(bn, "base_layer", bn) if hasattr(bn, "adapt_base_output") else bn
        inference = not torch.is_grad_enabled()
        frozen = (
            type(conv) is nn.Conv1d
            and type(base_bn) is BatchNorm1d
            and x.dtype in (torch.float32, torch.bfloat16)
            and (inference or (x.requires_grad and not conv.weight.requires_grad))
        )
        affine = base_bn.eval_affine() if frozen else None
        if affine is None:
            return self.act(bn(conv(x)))
        if inference and torch.is_autocast_enabled("cpu"):
            # Inference under autocast: the conv (a matmul where pointwise) and the BatchNorm after it, not folded.
            # Folded weights rounded to bfloat16 moved the probabilities further from float32's (max |dp| over 120
            # CPSC2018 records 0.024, p99 0.019, against 0.018 and 0.017 unfolded), and parity within 0.02 is what
            # makes bf16 the bulk default (tests/test_inference.py); the matmul is most of the speed-up anyway.
            return act_on_new(self.act, bn(frozen_conv1d(x, conv.weight, conv.bias, conv)))
        scale, shift = affine
        weight = conv.weight * scale.view(-1, 1, 1)
        bias = shift if conv.bias is None else shift + scale * conv.bias
        out = frozen_conv1d(x, weight, bias, conv)
        # the folded conv's output is new and seen by nothing else yet: in inference the ReLU may overwrite it
        return act_on_new(self.act, out if bn is base_bn else bn.adapt_base_output(out))


# The shortest time axis for which a frozen pointwise conv runs as a matmul (``frozen_conv1d``): below it the
# batched matmul's per-sample weight operand costs more than oneDNN's backward (bfloat16, 1024 -> 256 channels at 32
# steps: 3.0 ms as a conv, 5.4 as a matmul). Measured on an xresnet1d101 adapter step: 64 beat 0 (every pointwise
# conv) in float32 (386 vs 392 ms) and bfloat16 (303 vs 315 ms).
POINTWISE_MATMUL_MIN_LENGTH = 64

# The same for eager inference (no gradient), where oneDNN's forward is the alternative: in bfloat16 a batched matmul
# was as fast as the conv at 63 steps and 3-8x slower at 32 and 16 (64 windows, one thread); xresnet1d101 with an
# adapter, 64 windows, eager: float32 408 ms with convs (after the fold), 367 from 48 steps on, 385 from 64, 374 with
# all; bfloat16 (then with folded weights) 236 from 48, 278 from 64, 256 with all.
POINTWISE_INFERENCE_MATMUL_MIN_LENGTH = 48


class _FrozenPointwiseConv(torch.autograd.Function):
    """``weight @ x + bias`` over the channels of ``x`` (batch, in, time) for a frozen ``weight`` (out, in): the
    gradient is ``x``'s only, ``weight.T @ grad``, with the transposed weight made contiguous (a transposed view
    makes bfloat16 ``bmm`` 10x slower)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(weight)
        out = torch.bmm(weight.expand(x.shape[0], -1, -1), x)  # the expanded batch of weights is a view, not a copy
        return out.add_(bias.unsqueeze(-1))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        weight_t = weight.t().contiguous()
        return torch.bmm(weight_t.expand(grad.shape[0], -1, -1), grad.contiguous()), None, None


def is_pointwise_conv1d(conv: nn.Conv1d) -> bool:
    """Kernel 1, stride 1, no padding, one group: a conv that is a matmul over the channels at every step (dilation
    has no effect on a kernel of 1)."""
    return conv.kernel_size == (1,) and conv.stride == (1,) and conv.padding in ((0,), "valid") and conv.groups == 1


def frozen_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv: nn.Conv1d) -> torch.Tensor:
    """``conv1d(x, weight, bias)`` with ``conv``'s stride, padding, dilation and groups, for a frozen ``weight`` (the
    folded pair of ``ConvBnAct1d``).

    A pointwise conv (kernel 1, stride 1, no padding, one group) on CPU in float32 or bfloat16 runs as a batched
    matmul where that is faster; other convs take ``F.conv1d``. Under autocast the inputs are cast as ``conv1d``'s
    would be; the output is the conv's up to the order of the sums (tests check it).

    * With a gradient for ``x`` (an adapter trains upstream): over at least ``POINTWISE_MATMUL_MIN_LENGTH`` steps,
      outside ``torch.compile``. The input gradient is then a matmul too, where oneDNN runs a transposed convolution
      that on this CPU is 4x slower for a (32, 256, 250) -> 64-channel map (8.7 vs 2.0 ms in float32, 3.5 vs 0.6 ms
      in bfloat16, one thread).
    * With gradients off (inference): over at least ``POINTWISE_INFERENCE_MATMUL_MIN_LENGTH`` steps, and at any length
      under ``torch.compile``. oneDNN computes a 1x1 conv of a (batch, channels, time) map in a channels-last layout
      and copies its output back, which for a (64, 64, 250) -> 256-channel map costs more than the product itself
      (21.8 vs 8.4 ms in float32, 9.1 vs 2.2 ms in bfloat16, one thread); inductor calls the same kernel, and its
      matmuls were faster than the conv on the short maps too (xresnet1d101 with an adapter, 64 windows, compiled
      bf16 with folded weights: 234 ms with convs, 166 with matmuls from 48 steps on, 155 with matmuls throughout;
      the final unfolded bf16 path: 252 -> 170 ms).
    """
    if is_pointwise_conv1d(conv) and x.dim() == 3 and x.device.type == "cpu":
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        if dtype in (torch.float32, torch.bfloat16) and not weight.requires_grad:
            if torch.is_grad_enabled() and x.requires_grad:
                long_enough = x.shape[-1] >= POINTWISE_MATMUL_MIN_LENGTH
                if bias is not None and long_enough and not torch.compiler.is_compiling():
                    return _FrozenPointwiseConv.apply(x.to(dtype), weight[:, :, 0].to(dtype), bias.to(dtype))
            elif not torch.is_grad_enabled() and (
                torch.compiler.is_compiling() or x.shape[-1] >= POINTWISE_INFERENCE_MATMUL_MIN_LENGTH
            ):
                w = weight[:, :, 0].to(dtype).expand(x.shape[0], -1, -1)
                if bias is None:
                    return torch.bmm(w, x.to(dtype))
                return torch.baddbmm(bias.to(dtype).unsqueeze(-1), w, x.to(dtype))
    return nn.functional.conv1d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class AdaptivePool1d(nn.Module):
    """Global pooling over time: concatenated average+max (``avgmax``) or average (``avg``)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        avg = x.mean(dim=-1)
        if self.mode == "avg":
            return avg
        return torch.cat([avg, x.amax(dim=-1)], dim=-1)


class ECGClassificationHead(nn.Module):
    def __init__(self, feature_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_size, num_labels)

    def forward(self, pooled):
        return self.classifier(self.dropout(pooled))


def conv_bn_values(in_channels: int, out_channels: int, kernel_size: int) -> int:
    """Values in the state dict of a :class:`ConvBnAct1d`: conv weight (no bias), BatchNorm weight, bias, running
    mean and variance, and its batch counter."""
    return in_channels * out_channels * kernel_size + 4 * out_channels + 1


class _WindowMean(torch.autograd.Function):
    """Means over consecutive windows of ``k`` steps along the last dim, the last window holding what is left."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, k: int) -> torch.Tensor:
        length = x.shape[-1]
        n = length // k
        ctx.k, ctx.length = k, length
        out = x[..., 0 : n * k : k].clone()
        for j in range(1, k):
            out += x[..., j : n * k : k]
        out *= 1.0 / k
        if n * k < length:
            out = torch.cat([out, x[..., n * k :].mean(dim=-1, keepdim=True)], dim=-1)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        k, length = ctx.k, ctx.length
        n = length // k
        grad_input = grad.new_empty(grad.shape[:-1] + (length,))
        share = grad[..., :n] * (1.0 / k)
        for j in range(k):
            grad_input[..., j : n * k : k] = share
        if n * k < length:
            grad_input[..., n * k :] = grad[..., n:] / (length - n * k)
        return grad_input, None


class StridedAvgPool1d(nn.AvgPool1d):
    """``nn.AvgPool1d(stride, ceil_mode=True)``, the strided shortcut of an XResNet1d block, computed as a sum of
    strided slices.

    torch's CPU kernel (it runs as a 2D pool) took 6.7 ms forward and 14.5 ms forward + backward for a
    (32, 256, 250) float32 tensor on one thread, the slices 0.7 and 2.3 ms (bfloat16: 16.0 -> 3.0 ms), with the
    same values (``tests/test_encoders.py``); an xresnet1d101 forward (batch 64, eager) took 342 -> 310 ms. The
    module and its (empty) state dict are the pool's.
    """

    def __init__(self, stride: int):
        super().__init__(stride, ceil_mode=True)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        (k,), (s,) = self.kernel_size, self.stride  # nn.AvgPool1d stores both as 1-tuples
        if (
            k != s
            or self.padding != (0,)
            or input.dim() != 3
            or input.shape[-1] < k
            or torch.compiler.is_compiling()  # inductor fuses the pool itself; the slices only doubled compile time
        ):
            return super().forward(input)
        return _WindowMean.apply(input, k)


# ----------------------------------------------------------------------------------------------------------------
# networks


def forward_resnet_features(
    module: nn.Module, input_values: torch.Tensor, output_hidden_states: bool = False
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """(last feature map of shape (batch, channels, time), the intermediate maps or None) of a ``stem`` +
    ``stem_pool`` + ``stages`` network (the ResNet families)."""
    hidden_state = module.stem_pool(module.stem(input_values))
    hidden_states = (hidden_state,) if output_hidden_states else None
    for stage in module.stages:
        hidden_state = stage(hidden_state)
        if output_hidden_states:
            hidden_states += (hidden_state,)
    return hidden_state, hidden_states


class XResNet1dBlock(nn.Module):
    """Bottleneck (expansion > 1) or basic residual block with an average-pool shortcut when strided."""

    def __init__(self, in_channels, width, expansion, kernel_size, stride):
        super().__init__()
        out_channels = width * expansion
        if expansion == 1:
            self.convpath = nn.Sequential(
                ConvBnAct1d(in_channels, width, kernel_size, stride=stride),
                ConvBnAct1d(width, out_channels, kernel_size, act=False, zero_bn=True),
            )
        else:
            self.convpath = nn.Sequential(
                ConvBnAct1d(in_channels, width, 1),
                ConvBnAct1d(width, width, kernel_size, stride=stride),
                ConvBnAct1d(width, out_channels, 1, act=False, zero_bn=True),
            )
        shortcut = []
        if stride != 1:
            shortcut.append(StridedAvgPool1d(stride))
        if in_channels != out_channels:
            shortcut.append(ConvBnAct1d(in_channels, out_channels, 1, act=False))
        self.idpath = nn.Sequential(*shortcut)
        self.act = nn.ReLU()

    def forward(self, x):
        return add_relu(self.convpath(x), self.idpath(x), self.act)


def build_xresnet1d(module: nn.Module, config) -> None:
    """Give ``module`` the ``stem``, ``stem_pool`` and ``stages`` of an XResNet1d (fields of ``XResNet1dConfig``)."""
    stem, channels = [], config.in_channels
    for i, width in enumerate(config.stem_widths):
        stem.append(ConvBnAct1d(channels, width, config.kernel_size, stride=2 if i == 0 else 1))
        channels = width
    module.stem = nn.Sequential(*stem)
    module.stem_pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
    stages = []
    for i, (n_blocks, width) in enumerate(zip(config.layers, config.block_widths)):
        blocks = []
        for j in range(n_blocks):
            stride = 2 if (i > 0 and j == 0) else 1
            blocks.append(XResNet1dBlock(channels, width, config.expansion, config.kernel_size, stride))
            channels = width * config.expansion
        stages.append(nn.Sequential(*blocks))
    module.stages = nn.Sequential(*stages)


class ResNet1dBasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        self.conv1 = ConvBnAct1d(in_channels, out_channels, kernel_size, stride=stride)
        self.conv2 = ConvBnAct1d(out_channels, out_channels, kernel_size, act=False, zero_bn=True)
        if stride != 1 or in_channels != out_channels:
            self.downsample = ConvBnAct1d(in_channels, out_channels, 1, stride=stride, act=False)
        else:
            self.downsample = nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x):
        return add_relu(self.conv2(self.conv1(x)), self.downsample(x), self.act)


def build_resnet1d(module: nn.Module, config) -> None:
    """Give ``module`` the ``stem``, ``stem_pool`` and ``stages`` of a ResNet1d (fields of ``ResNet1dConfig``; stage
    ``i`` is ``base_width * 2**i`` channels wide)."""
    module.stem = ConvBnAct1d(config.in_channels, config.base_width, config.stem_kernel_size, stride=2)
    module.stem_pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
    stages, channels = [], config.base_width
    widths = resnet1d_stage_widths(config.base_width, len(config.layers))
    for i, (n_blocks, width) in enumerate(zip(config.layers, widths)):
        blocks = []
        for j in range(n_blocks):
            blocks.append(ResNet1dBasicBlock(channels, width, config.kernel_size, 2 if (i > 0 and j == 0) else 1))
            channels = width
        stages.append(nn.Sequential(*blocks))
    module.stages = nn.Sequential(*stages)


#: model_type -> the function that builds its network (the families ``tac_ecg_hf.lite`` runs without transformers)
NETWORK_BUILDERS = {"xresnet1d": build_xresnet1d, "resnet1d": build_resnet1d}
