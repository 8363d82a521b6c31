"""tac-ecg-hf: TAC-ECG (contrastive ECG-text pre-training + Low-Rank Convolutional Adapters) for the
Hugging Face stack. Importing the package registers the encoders and CETP with the transformers Auto classes
and the LRC-Adapter with PEFT."""

__version__ = "0.1.0"

from .adapters.lrc import AdapterMismatchError, LRCConfig, LRCModel
from .models import *  # noqa: F401,F403
from .models import CETPConfig, CETPModel, ENCODER_FAMILIES, ENCODER_PRESETS, create_encoder_config
from .tasks import STANDARD_LEADS, TASKS, TaskSpec, get_task


def _seed_bundled_checkpoints() -> None:
    """Make ``AutoModel.from_pretrained("tac-ecg/...")`` find the bundled checkpoints: copy them into the Hugging Face
    cache once (idempotent, a few MB). Set ``TAC_ECG_NO_CACHE_SEED=1`` to skip; failures never break the import."""
    import logging
    import os

    if os.environ.get("TAC_ECG_NO_CACHE_SEED"):
        return
    try:
        from .hub import bundled_repo_ids, seed_hf_cache

        if bundled_repo_ids():
            seed_hf_cache()
    except Exception as err:  # pragma: no cover - read-only cache, odd file systems
        logging.getLogger(__name__).debug("could not seed the Hugging Face cache: %s", err)


_seed_bundled_checkpoints()
