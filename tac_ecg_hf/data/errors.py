"""Exceptions and warnings raised by the ECG data layer.

Every error names the record (path or id), says what is wrong and how to fix it.

* :class:`ECGInputError` (a :class:`ValueError`): the signal or record is unusable
  (non-finite samples, missing leads, wrong shape, unknown label, ...).
* :class:`ECGFileError` (an :class:`ECGInputError`): a file is corrupt, truncated, unparseable
  or disagrees with its header.
* :class:`ECGFileNotFoundError`: a file that a record needs does not exist
  (also a :class:`FileNotFoundError`, so both ``except`` styles work).
* :class:`ECGConfigError` (a :class:`ValueError`): the settings of an ``ECGFeatureExtractor``
  (``preprocessor_config.json``) are invalid.
* :class:`ECGQualityWarning` (a :class:`UserWarning`): the record is usable but suspicious
  (flat or clipped leads).
"""

from __future__ import annotations

__all__ = [
    "ECGInputError",
    "ECGFileError",
    "ECGFileNotFoundError",
    "ECGConfigError",
    "ECGQualityWarning",
]


class ECGInputError(ValueError):
    """A signal or record cannot be used as given (bad shape, non-finite values, missing leads, ...)."""


class ECGFileError(ECGInputError):
    """A file is corrupt, truncated, unparseable or disagrees with its header."""


class ECGFileNotFoundError(ECGFileError, FileNotFoundError):
    """A file needed by a record does not exist."""


class ECGConfigError(ValueError):
    """The settings of an ``ECGFeatureExtractor`` (its ``preprocessor_config.json``) are invalid."""


class ECGQualityWarning(UserWarning):
    """A record is usable but suspicious (flat or clipped leads)."""
