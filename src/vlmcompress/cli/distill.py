"""``vlmcompress distill``: routed to the distillation run's own (HfArgumentParser) options before argparse reads anything; the subparser is only there for the command list in ``--help``."""

from __future__ import annotations




def add_parser(sub) -> None:
    """Register ``distill`` for ``--help`` (``main`` routes the command before parsing)."""
    sub.add_parser(
        "distill", add_help=False,
        help="distill a teacher into a smaller student inside transformers.Trainer (recipes/distill_clip.py's run)",
        description="Everything after `distill` goes to the distillation run, with the recipe's options "
        "(main() routes it before this parser; listed here for --help): `vlmcompress distill --help` lists them, "
        "`--family blip` picks the captioner defaults. Two processes: accelerate launch -m vlmcompress.cli distill ...",
    )


def _distill_argv(argv):
    """(family, the recipe's options) when the command is ``distill``, else None: everything after ``distill`` is the
    recipe's (HfArgumentParser) options, which argparse must not read."""
    for i, token in enumerate(argv):
        if token == "distill":
            rest = argv[i + 1:]
            family = "clip"
            if rest[:1] == ["--family"] and len(rest) > 1:
                family, rest = rest[1], rest[2:]
            elif rest[:1] and rest[0].startswith("--family="):
                family, rest = rest[0].split("=", 1)[1], rest[1:]
            return family, rest
        if not token.startswith("-"):
            return None
    return None
