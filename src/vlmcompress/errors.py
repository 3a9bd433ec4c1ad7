"""Errors a user can act on. The CLI prints their message on one line and exits non-zero."""


class VlmcompressError(Exception):
    """Bad input or an unsupported model: the message says what was expected and how to fix it."""
