"""The ``vlmcompress`` entry point: the top-level parser over the command modules, and one line per failure."""

from __future__ import annotations

import argparse
import sys

from . import cache_teacher, card, compress, distill, evaluate, export, prune, push, quantize
from ._args import _kebab_case, _Parser
from .compress import _recipe_trains
from .distill import _distill_argv

#: the commands in the order ``--help`` lists them
COMMANDS = (evaluate, prune, quantize, export, distill, compress, card, cache_teacher, push)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="vlmcompress",
        description="Prune, quantize, distill and export CLIP, SigLIP and BLIP models; every command defaults to the embedded teacher "
        "and the embedded digits benchmark, so it runs offline.",
    )
    parser.add_argument("--version", action="version", version=f"vlmcompress {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--verbose", "-v", dest="verbosity", action="store_const", const=1, default=0,
                        help="show the libraries' own logs and warnings too")
    parser.add_argument("--quiet", "-q", dest="verbosity", action="store_const", const=-1,
                        help="no progress bars: results and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _error_line(exc) -> str:
    text = str(exc).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first or type(exc).__name__


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    routed = _distill_argv(argv)
    if routed is not None:
        from ..threads import use_training_thread_policy

        use_training_thread_policy()  # before torch is imported; a training process only
        family, rest = routed
        if family not in ("clip", "blip"):
            print(f"vlmcompress distill: error: --family takes clip or blip, got {family!r}", file=sys.stderr)
            return 2
        from ..workflows.distill import run_distillation

        return run_distillation(rest, family=family, prog="vlmcompress distill")
    parser = build_parser()
    try:
        args = parser.parse_args(_kebab_case(parser, argv))
    except SystemExit as exc:  # --help, --version, a parse error (printed already): its status, also from Python
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command == "compress" and _recipe_trains(args.recipe):
        from ..threads import use_training_thread_policy

        use_training_thread_policy()  # a recipe with a distillation stage is a training process (before torch)
    from ..errors import VlmcompressError
    from ..io import releasing_outputs
    from ..report import ReportError

    try:
        with releasing_outputs():  # the output folders this command locked are free again when it returns
            return args.func(args) or 0
    except KeyboardInterrupt as exc:  # a run that kept work (a recipe's stages) says what: errors.Interrupted
        print(str(exc) or "interrupted; nothing was written", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is one line; --debug shows the traceback
        if args.debug:
            raise
        known = isinstance(exc, (VlmcompressError, ReportError, FileNotFoundError, FileExistsError, PermissionError))
        line = _error_line(exc) if known else f"{type(exc).__name__}: {_error_line(exc)} (rerun with --debug for the traceback)"
        print(f"vlmcompress {args.command}: error: {line}", file=sys.stderr)
        return 1
