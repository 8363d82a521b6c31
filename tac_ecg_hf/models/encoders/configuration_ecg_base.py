"""Fields shared by every ECG encoder configuration in tac-ecg-hf.

This file is copied next to a saved checkpoint (``trust_remote_code``), so it only imports
``transformers``, the standard library and relative modules.

Configs are strict: an unknown field (a typo such as ``layrs``) is refused, and a ``config.json`` that lacks
a field defining the network (``layers`` of an XResNet1d, ``in_channels``, ``sampling_rate``...) is refused
instead of silently taking the default. Every size is checked against a sane maximum (see ``MAX_*`` below) before
any module is built, so a corrupt or hostile ``config.json`` (``"layers": [3, 4, 100000, 3]``) fails in
milliseconds instead of allocating gigabytes. All of these raise :class:`ConfigFieldError` naming the field.
"""

import dataclasses
import difflib
import math

from transformers import PreTrainedConfig

from .limits import (  # noqa: F401  (the bounds, re-exported under the names this module always had)
    MAX_ATTENTION_HEADS,
    MAX_DEPTH,
    MAX_IN_CHANNELS,
    MAX_KERNEL_SIZE,
    MAX_NUM_LABELS,
    MAX_NUM_SAMPLES,
    MAX_SAMPLING_RATE,
    MAX_STRIDE,
    MAX_WIDTH,
)

STANDARD_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


class ConfigFieldError(ValueError):
    """A config has unknown fields (typos), a value out of range or, loaded from a file, lacks fields that define
    the network."""




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
        self._check_num_labels(kwargs.get("num_labels"))
        if self.lead_names is None and isinstance(self.in_channels, int):
            self.lead_names = list(STANDARD_LEADS[: self.in_channels]) if self.in_channels <= 12 else None
        self.lead_names = as_list(self.lead_names)
        self._validate()
        super().__post_init__(**kwargs)

    # -- value checks ----------------------------------------------------------------------------------------
    def _error(self, message: str) -> ConfigFieldError:
        return ConfigFieldError(f"{type(self).__name__}: {message}")

    def _check_int(self, name: str, value, low: int = 1, high: int | None = None, odd: bool = False) -> None:
        """``value`` must be an int in ``[low, high]`` (and odd when asked): one line naming the field otherwise."""
        kind = "an odd integer" if odd else "an integer"
        bounds = f"in [{low}, {high:,}]" if high is not None else f">= {low}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(f"{name} must be {kind} {bounds}, got {value!r}.")
        if value < low or (high is not None and value > high) or (odd and value % 2 == 0):
            raise self._error(f"{name} must be {kind} {bounds}, got {value!r}.")

    def _check_int_list(self, name: str, values, low: int = 1, high: int | None = None, odd: bool = False,
                        max_len: int = MAX_DEPTH) -> None:
        if not isinstance(values, list) or not 1 <= len(values) <= max_len:
            raise self._error(f"{name} must be a list of 1 to {max_len:,} integers, got {_short(values)}.")
        for i, value in enumerate(values):
            self._check_int(f"{name}[{i}]", value, low, high, odd)

    def _check_fraction(self, name: str, value) -> None:
        """A dropout probability: a number in [0, 1)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise self._error(f"{name} must be a number in [0, 1), got {value!r}.")

    def _check_num_labels(self, num_labels) -> None:
        # checked before PreTrainedConfig builds id2label from it: num_labels=10**9 would build a billion-entry dict
        if num_labels is not None:
            self._check_int("num_labels", num_labels, 1, MAX_NUM_LABELS)
        if self.id2label is not None and len(self.id2label) > MAX_NUM_LABELS:
            raise self._error(f"id2label has {len(self.id2label):,} labels; at most {MAX_NUM_LABELS:,} are supported.")

    def _validate(self) -> None:
        """Check every field against its range before any module is built; families extend it."""
        self._check_int("in_channels", self.in_channels, 1, MAX_IN_CHANNELS)
        self._check_int("sampling_rate", self.sampling_rate, 1, MAX_SAMPLING_RATE)
        self._check_int("num_samples", self.num_samples, 1, MAX_NUM_SAMPLES)
        if self.lead_names is not None and not (
            isinstance(self.lead_names, list) and all(isinstance(name, str) for name in self.lead_names)
        ):
            raise self._error(f"lead_names must be a list of lead names, got {_short(self.lead_names)}.")
        if self.lead_names is not None and len(self.lead_names) != self.in_channels:
            raise self._error(
                f"lead_names has {len(self.lead_names)} names but in_channels={self.in_channels}; "
                "give one name per input lead."
            )
        if self.pooling not in ("avgmax", "avg"):
            raise self._error(f"pooling must be 'avgmax' or 'avg', got {self.pooling!r}.")
        self._check_fraction("classifier_dropout", self.classifier_dropout)
        if (
            isinstance(self.initializer_range, bool)
            or not isinstance(self.initializer_range, (int, float))
            or not 0 < self.initializer_range <= 1
            or not math.isfinite(self.initializer_range)
        ):
            raise self._error(f"initializer_range must be a number in (0, 1], got {self.initializer_range!r}.")

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


def as_list(value, default=None):
    """A list/tuple field as a list (``default`` when None); anything else unchanged, for ``_validate`` to refuse."""
    if value is None:
        return default
    return list(value) if isinstance(value, (list, tuple)) else value


def _short(value, limit: int = 80) -> str:
    """repr of ``value`` cut to ``limit`` characters (a config value can be a 100,000-element list)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
