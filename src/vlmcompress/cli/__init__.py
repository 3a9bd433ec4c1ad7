"""``vlmcompress`` command line: one module per command (its parser and its ``cmd_*``), each a thin layer over the
library's runners (``workflows``); ``main`` routes ``distill`` to the distillation run and parses the rest."""

from .app import build_parser, main
from .prune import pruning_config
from .quantize import quantization_config

__all__ = ["build_parser", "main", "pruning_config", "quantization_config"]
