"""Small shared helpers."""

from __future__ import annotations

import os
import sys


def progress(iterable=None, **kwargs):
    """A tqdm bar on stderr, silenced with VLMCOMPRESS_NO_PROGRESS=1 (tests) or when not on rank 0."""
    from tqdm.auto import tqdm

    disable = os.environ.get("VLMCOMPRESS_NO_PROGRESS") == "1" or int(os.environ.get("RANK", "0")) != 0
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=disable, **kwargs)


def unwrap_model(model):
    """The transformers model inside DDP / accelerate wrappers (``.module``) and a peft model (``get_base_model``)."""
    from torch import nn

    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def looks_local(name: str) -> bool:
    """Whether ``name`` is meant as a local path rather than a Hub id ("name" or "owner/name"): it starts with
    ".", "/" or "~", ends with "/", has more than one "/", or its first part is an existing local folder."""
    from pathlib import Path

    if name.startswith((".", "/", "~")) or name.endswith("/") or name.count("/") > 1 or (os.sep != "/" and os.sep in name):
        return True
    head, sep, _ = name.partition("/")
    return bool(sep) and Path(head).is_dir()


def set_verbosity(level: int = 0) -> None:
    """Commands and recipes: 0 (default) shows our progress bars and results, no library chatter (transformers'
    weight-loading bars and warnings); -1 (``--quiet``) results and errors only; 1 (``--verbose``) the libraries' own
    logs and warnings too."""
    import logging
    import warnings

    import sys

    if level < 0:
        os.environ["VLMCOMPRESS_NO_PROGRESS"] = "1"
    if level <= 0:  # datasets' "Generating train split" / "Map" bars are library chatter too
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
    from transformers.utils import logging as hf_logging

    if level > 0:
        hf_logging.set_verbosity_info()
        logging.basicConfig(level=logging.INFO)
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # "Retrying in 1s [Retry 1/5]" per request: the one-line error says it all
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*torchvision.*")


def hf_argument_parser(dataclasses, prog: str | None = None, usage: str | None = None):
    """``HfArgumentParser`` whose parse errors are one ``VlmcompressError`` line (not the whole usage block). A
    dataclass with an ``_argument_group_name`` class attribute gets its own --help heading."""
    from transformers import HfArgumentParser

    from .errors import VlmcompressError

    class Parser(HfArgumentParser):
        def error(self, message):
            raise VlmcompressError(f"{message}; see --help")

    return Parser(dataclasses, prog=prog, usage=usage)


def lazy_attributes(package: str, lazy: dict):
    """A module ``__getattr__`` (PEP 562) for ``package``: ``lazy`` maps a public name to the submodule that defines
    it, imported the first time the name is used, so that the package's light submodules load without torch."""
    import importlib

    def __getattr__(name):
        if name in lazy:
            value = getattr(importlib.import_module(f".{lazy[name]}", package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
