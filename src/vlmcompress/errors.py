"""Errors a user can act on. The CLI prints their message on one line and exits non-zero."""


class VlmcompressError(Exception):
    """Bad input or an unsupported model: the message says what was expected and how to fix it."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run that keeps what it finished (a recipe's complete stages, Trainer checkpoints): the message
    says what was kept and how to resume; the CLI prints it instead of "nothing was written"."""
