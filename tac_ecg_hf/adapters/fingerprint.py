"""Fingerprint of the frozen encoder an adapter was trained on, stored in its ``adapter_config.json``.

``encoder_fingerprint`` is ``"sha256:<hex>"`` over the encoder's parameters and persistent buffers, sorted by name:
for each tensor its name, its shape and the bytes of its values **cast to float32** (little-endian, C order). So:

* it is deterministic and cheap (one pass over the encoder's weights: about 10 ms for xresnet1d101);
* it names the encoder only: the classification head and the adapters' own tensors are left out, and names are
  taken relative to the encoder, so a bare ``*Model`` and the ``encoder`` of a ``*ForSequenceClassification``
  with the same weights give the same fingerprint, with or without adapters injected;
* it describes the values as loaded: a float16 checkpoint loaded (and cast) to float32 has the fingerprint of its
  float16-rounded values, which differs from that of the float32 weights it was rounded from. Store encoders and
  train adapters in one precision (tac-ecg-hf stores float32).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["encoder_fingerprint", "encoder_module", "encoder_state_dict", "state_dict_fingerprint"]


def encoder_module(model: nn.Module) -> nn.Module:
    """The encoder inside ``model``: unwraps a ``PeftModel`` / tuner, then takes transformers' ``base_model`` (the
    ``encoder`` of an ECG classifier, the model itself for a bare encoder)."""
    from peft.tuners.tuners_utils import BaseTuner

    if hasattr(model, "get_base_model"):  # PeftModel
        model = model.get_base_model()
    elif isinstance(model, BaseTuner):
        model = model.model
    return getattr(model, "base_model", model)


def encoder_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's own tensors by name, as if no adapter were injected (adapter tensors left out, the
    ``base_layer.`` of wrapped layers removed from the names)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    encoder = encoder_module(model)
    adapter_prefixes, wrapped = [], []
    for name, module in encoder.named_modules():
        if isinstance(module, BaseTunerLayer):
            prefix = f"{name}." if name else ""
            wrapped.append(prefix)
            attrs = (*module.adapter_layer_names, *module.other_param_names)
            adapter_prefixes += [prefix + attr + "." for attr in attrs]
    state = {}
    for key, tensor in encoder.state_dict().items():
        if any(key.startswith(p) for p in adapter_prefixes):
            continue
        for prefix in wrapped:  # "layers.0.bn.base_layer.weight" -> "layers.0.bn.weight"
            if key.startswith(prefix + "base_layer."):
                key = prefix + key[len(prefix) + len("base_layer.") :]
        state[key] = tensor
    return state


@torch.no_grad()
def state_dict_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """``"sha256:<hex>"`` of an encoder's tensors by name (see the module docstring). Needs neither PEFT nor the
    model: ``tac_ecg_hf.lite`` checks adapters against the encoder's weights file with it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        values = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
        digest.update(f"{name}:{tuple(values.shape)};".encode())
        digest.update(values.numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def encoder_fingerprint(model: nn.Module) -> str:
    """``"sha256:<hex>"`` of the encoder's weights (see the module docstring for what it covers)."""
    return state_dict_fingerprint(encoder_state_dict(model))
