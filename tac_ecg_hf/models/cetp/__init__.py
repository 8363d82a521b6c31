"""CETP dual encoder (config, model, loss). Names load their module on first use; registered with
AutoConfig/AutoModel by ``tac_ecg_hf.models.registration``."""

from ..._lazy import lazy_exports

_EXPORTS = {
    "CETPConfig": ".configuration_cetp",
    "CETPLoss": ".loss_cetp",
    "gather_features": ".loss_cetp",
    **dict.fromkeys(
        ["DEFAULT_TEXT_MODEL_ID", "CETPModel", "CETPOutput", "CETPPreTrainedModel", "default_text_model_path",
         "resolve_text_model", "weights_fingerprint"],
        ".modeling_cetp",
    ),
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
