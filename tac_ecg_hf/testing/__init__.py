"""Test helpers for tac-ecg-hf (no network needed).

:mod:`tac_ecg_hf.testing.local_hub` -- a local Hugging Face Hub-compatible server
(:class:`LocalHubServer`) and helpers that point the HF stack at it (:func:`use_endpoint`,
:func:`local_hub_env`, :func:`use_offline`).
"""

from .local_hub import (
    LocalHubServer,
    closed_port_endpoint,
    endpoint_patches,
    free_port,
    local_hub_env,
    use_endpoint,
    use_offline,
)

__all__ = [
    "LocalHubServer",
    "closed_port_endpoint",
    "endpoint_patches",
    "free_port",
    "local_hub_env",
    "use_endpoint",
    "use_offline",
]
