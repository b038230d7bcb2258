"""Errors a user can cause: a missing data folder, a bad weights or image file, a malformed
label or config, a refused donation, arguments that do not fit together. Each carries a message
meant for that user. The CLI prints these as one line; any other exception is a bug and keeps
its traceback (and `--debug` shows the traceback for these too)."""

from __future__ import annotations


class UserError(Exception):
    """Base of every error whose message is meant for the user (see module doc)."""


class WeightsError(UserError, RuntimeError):
    """A weights file is missing, corrupted, or not a digit-detector model."""
