"""The project's error hierarchy: one root, split into retryable and fatal kinds."""

from __future__ import annotations


class QuantdeskError(Exception):
    """Root of every error quantdesk raises on purpose."""


class RetryableError(QuantdeskError):
    """A failure that may succeed when tried again (timeout, dropped connection, 5xx)."""


class FatalError(QuantdeskError):
    """A failure that retrying cannot fix."""


class UserError(FatalError):
    """Bad input from a user (file, flag, parameter): shown as one line, never a traceback."""


class ConfigError(UserError):
    """An invalid configuration value."""


class DataError(UserError):
    """A data file that cannot be used as given; the message names file, row and column."""
