"""Test support: a local Hub-compatible endpoint (:mod:`support.local_hub`)."""
