"""The settings error, apart from pipeline.config so that the modules config reads files with
(pipeline/behaviours/spec.py) can raise it without importing config."""

from __future__ import annotations


class ConfigError(ValueError):
    """A settings file or variable is wrong; the message names the key and the file."""
