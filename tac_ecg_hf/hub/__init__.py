"""The Hub side of tac-ecg-hf, on huggingface_hub's public API.

* :func:`resolve_repo`, :func:`list_task_adapters` -- a model repo on disk: local folder, bundled copy, or the Hub
  through its cache; its task adapter subfolders.
* :func:`describe_hub_error`, :class:`HubAccessError`, :func:`hub_errors` -- one-line messages from huggingface_hub's
  typed errors.
* :func:`bundled_repo_ids`, :func:`bundled_path`, :func:`seed_hf_cache` -- the checkpoints shipped in
  ``tac_ecg_hf/checkpoints/<org>/<name>/``, and copying them into the Hugging Face cache on request.
* :func:`push_run`, :func:`build_model_card`, :func:`write_card_metadata` -- publishing a trained run with its card.
"""

from .._lazy import lazy_exports

# Names load their submodule on first use: resolving a model for one prediction (``bundled``, ``resolve``) does not
# import huggingface_hub's HfApi and repocard, which ``card`` and ``publish`` need (0.24 s of a 4 s command, measured
# with ``python -X importtime``; benchmarks/RESULTS.md).
_EXPORTS = {
    **dict.fromkeys(
        ["BUNDLED_REF", "CHECKPOINTS_ROOT", "bundled_commit_hash", "bundled_path", "bundled_repo_ids",
         "seed_hf_cache"],
        ".bundled",
    ),
    **dict.fromkeys(
        [
            "CARD_METADATA",
            "GENERATED_MARKER",
            "RunMetadata",
            "build_model_card",
            "hub_model_id",
            "read_run_metadata",
            "write_card_metadata",
            "write_model_card",
        ],
        ".card",
    ),
    **dict.fromkeys(["HubAccessError", "describe_hub_error", "hub_errors", "is_hub_unavailable"], ".errors"),
    "push_run": ".publish",
    **dict.fromkeys(["list_task_adapters", "resolve_repo", "task_adapters_in"], ".resolve"),
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
