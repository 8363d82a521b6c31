"""Fields shared by every ECG encoder configuration in tac-ecg-hf.

This file is copied next to a saved checkpoint (``trust_remote_code``), so it only imports
``transformers``, the standard library and relative modules.

Configs are strict: an unknown field (a typo such as ``layrs``) is refused, and a ``config.json`` that lacks
a field defining the network (``layers`` of an XResNet1d, ``in_channels``, ``sampling_rate``...) is refused
instead of silently taking the default. Both raise :class:`ConfigFieldError` naming the fields.
"""

import dataclasses
import difflib

from transformers import PreTrainedConfig

STANDARD_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


class ConfigFieldError(ValueError):
    """A config has unknown fields (typos) or, loaded from a file, lacks fields that define the network."""


#: Keys that transformers itself writes to or passes through ``config.json`` / ``from_pretrained`` without them
#: being dataclass fields: ``PreTrainedConfig.__post_init__`` consumes or stores them. Keys starting with ``_``
#: (``_name_or_path``, ``_commit_hash``, ``_attn_implementation`` ...) are transformers-internal and also accepted.
_TRANSFORMERS_KEYS = frozenset(
    {
        "model_type", "auto_map", "name_or_path", "num_labels", "torch_dtype", "attn_implementation",
        "experts_implementation", "output_attentions", "per_layer_config", "quantization_config",
        # transformers 4 wrote these PreTrainedConfig attributes into every config.json
        "torchscript", "use_bfloat16", "pruned_heads", "tie_word_embeddings", "tokenizer_class", "prefix",
        "bos_token_id", "pad_token_id", "eos_token_id", "sep_token_id", "decoder_start_token_id",
        "task_specific_params", "finetuning_task", "cross_attention_hidden_size", "add_cross_attention",
        "tie_encoder_decoder", "is_decoder", "tf_legacy_loss", "use_return_dict",
    }
)

#: Base fields a ``config.json`` of an ECG encoder must carry (besides its family's own fields): they fix the
#: input format and the width of the pooled features. ``classifier_dropout``/``initializer_range`` may default.
_REQUIRED_BASE_FIELDS = ("in_channels", "lead_names", "sampling_rate", "num_samples", "pooling")


def _generation_keys() -> frozenset:
    """Generation parameters that transformers pops from any config (old configs carry them)."""
    try:
        from transformers import GenerationConfig

        return frozenset(GenerationConfig._get_default_generation_params())
    except Exception:  # pragma: no cover - private API moved
        return frozenset()


class ECGEncoderConfig(PreTrainedConfig):
    r"""
    Base configuration of a 1D ECG encoder taking ``input_values`` of shape ``(batch, leads, samples)``.

    Args:
        in_channels (`int`): number of leads the encoder reads.
        lead_names (`list[str]`): the leads, in the order the encoder expects them.
        sampling_rate (`int`): sampling rate in Hz the encoder was trained at.
        num_samples (`int`): window length in samples the encoder was trained with.
        classifier_dropout (`float`): dropout before the classification head.
        pooling (`str`): ``"avgmax"`` (concatenated average and max pooling) or ``"avg"``.
        initializer_range (`float`): std of the normal init of linear layers.
    """

    model_type = "ecg_encoder"

    in_channels: int = 12
    lead_names: list[str] | None = None
    sampling_rate: int = 100
    num_samples: int = 1000
    classifier_dropout: float = 0.1
    pooling: str = "avgmax"
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self._refuse_unknown_fields(kwargs)
        if self.lead_names is None:
            self.lead_names = list(STANDARD_LEADS[: self.in_channels]) if self.in_channels <= 12 else None
        if self.lead_names is not None:
            self.lead_names = list(self.lead_names)
            if len(self.lead_names) != self.in_channels:
                raise ValueError(
                    f"{type(self).__name__}: lead_names has {len(self.lead_names)} names but in_channels={self.in_channels}; "
                    "give one name per input lead."
                )
        if self.pooling not in ("avgmax", "avg"):
            raise ValueError(f"{type(self).__name__}: pooling must be 'avgmax' or 'avg', got {self.pooling!r}.")
        for name, value in self._positive_int_fields().items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive integer, got {value!r}.")
        super().__post_init__(**kwargs)

    # -- strictness ------------------------------------------------------------------------------------------
    @classmethod
    def _field_names(cls) -> set:
        return {f.name for f in dataclasses.fields(cls)}

    def _refuse_unknown_fields(self, kwargs: dict) -> None:
        """Refuse keyword arguments / config.json keys that are neither fields of this config nor keys that
        transformers itself passes (see ``_TRANSFORMERS_KEYS``)."""
        allowed = _TRANSFORMERS_KEYS | _generation_keys()
        unknown = sorted(k for k in kwargs if not k.startswith("_") and k not in allowed)
        if not unknown:
            return
        known = sorted(self._field_names())
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            if close:
                hints.append(f"{key!r} -> {close[0]!r}?")
        hint = f" Did you mean: {', '.join(hints)}" if hints else ""
        raise ConfigFieldError(
            f"{type(self).__name__} ({self.model_type}): unknown field(s) {unknown}.{hint} Known fields: {known}. "
            "Fix the name(s) in config.json or in the call; unknown fields are refused because they would be "
            "silently ignored."
        )

    @classmethod
    def required_fields(cls) -> list:
        """Fields a ``config.json`` of this family must contain: the input format, the pooling and every field
        that the family declares (its architecture), so that no loaded config silently takes a default."""
        base = {f.name for f in dataclasses.fields(ECGEncoderConfig)}
        own = [f.name for f in dataclasses.fields(cls) if f.name not in base]
        return list(_REQUIRED_BASE_FIELDS) + own

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """As ``PreTrainedConfig.from_dict`` (used by ``from_pretrained`` and ``AutoConfig``), but a dict (a
        ``config.json``) lacking any of :meth:`required_fields` is refused with :class:`ConfigFieldError`."""
        if cls is not ECGEncoderConfig:
            missing = [name for name in cls.required_fields() if name not in config_dict]
            if missing:
                source = kwargs.get("name_or_path") or config_dict.get("_name_or_path") or "the config dict"
                raise ConfigFieldError(
                    f"{cls.__name__} ({cls.model_type}): config.json of {source} lacks the field(s) {missing}. "
                    "They define the network and its input format, so they are not filled in with defaults. "
                    "Add them (re-save the config with save_pretrained, which writes every field), or build the "
                    f"config in code: {cls.__name__}(...)."
                )
        return super().from_dict(config_dict, **kwargs)

    def _positive_int_fields(self):
        return {"in_channels": self.in_channels, "sampling_rate": self.sampling_rate, "num_samples": self.num_samples}

    @property
    def feature_size(self) -> int:
        """Width of the pooled embedding returned as ``pooler_output``."""
        raise NotImplementedError

    def encoder_signature(self) -> dict:
        """What an adapter must match to be loaded on this encoder."""
        return {
            "model_type": self.model_type,
            "in_channels": self.in_channels,
            "feature_size": self.feature_size,
            "architecture": self._architecture_fields(),
        }

    def _architecture_fields(self) -> dict:
        return {}
