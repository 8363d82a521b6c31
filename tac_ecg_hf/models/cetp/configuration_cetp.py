"""Configuration of the CETP (Contrastive ECG-Text Pre-training) dual encoder."""

import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


class CETPConfig(PreTrainedConfig):
    r"""
    CLIP-style dual encoder: an ECG encoder (any tac-ecg-hf encoder config, ``ecg_config``) and any
    ``transformers`` text encoder (``text_config``), each followed by a projection head to ``projection_dim``,
    compared with a learnable temperature (``logit_scale``) under a symmetric InfoNCE loss.

    Args:
        ecg_config (`dict` or `PreTrainedConfig`): the ECG encoder config (``model_type`` picks the family).
        text_config (`dict` or `PreTrainedConfig`): the text encoder config (a BERT-family config by default).
        projection_dim (`int`): width of the shared embedding space.
        projection_dropout (`float`): dropout inside the projection heads.
        logit_scale_init_value (`float`): initial log inverse temperature (CLIP: log(1/0.07)).
        max_logit_scale (`float`): upper clamp of the inverse temperature (CLIP: 100).
        text_pooling (`str`): ``"mean"`` (masked mean of token states) or ``"cls"``.
        max_text_length (`int`): token budget of reports.
        text_model_name_or_path (`str`, *optional*): the pre-trained text tower by Hub id or path. When set (and the
            tower was kept frozen), checkpoints do not copy its weights: they are loaded from this reference, and
            ``text_model_fingerprint`` (a hash of its weights) makes sure it is the tower the model was trained with.
    """

    model_type = "cetp"
    sub_configs_defaults = {
        "ecg_config": SubConfigSpec(config_class=AutoConfig, model_type="xresnet1d"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
    }

    ecg_config: PreTrainedConfig | dict | None = None
    text_config: PreTrainedConfig | dict | None = None
    projection_dim: int = 256
    projection_dropout: float = 0.1
    logit_scale_init_value: float = math.log(1 / 0.07)
    max_logit_scale: float = 100.0
    text_pooling: str = "mean"
    max_text_length: int = 128
    initializer_range: float = 0.02
    text_model_name_or_path: str | None = None
    text_model_fingerprint: str | None = None

    def __post_init__(self, **kwargs):
        if self.text_pooling not in ("mean", "cls"):
            raise ValueError(f"CETPConfig: text_pooling must be 'mean' or 'cls', got {self.text_pooling!r}.")
        super().__post_init__(**kwargs)
