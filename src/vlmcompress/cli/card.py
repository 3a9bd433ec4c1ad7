"""``vlmcompress card``: (re)render a checkpoint folder's model card from its report."""

from __future__ import annotations

from ._args import _add_common


def add_parser(sub) -> None:
    """Register ``card``."""
    cd = sub.add_parser(
        "card",
        help="(re)render a checkpoint folder's model card (README.md and plots) from its compression_report.json",
        description="Render README.md (Hub metadata, what was done with its numbers, before/after table, accuracy "
        "against size plot, loading snippet, training log, versions, citations) from the folder's report.",
    )
    cd.add_argument("folder", help="checkpoint folder holding compression_report.json")
    cd.add_argument("--repo-id", help="Hub repo id to name in the loading snippet (default: the folder)")
    _add_common(cd)
    cd.set_defaults(func=cmd_card)


def cmd_card(args):
    from ..cards import write_card

    path = write_card(args.folder, repo_id=args.repo_id)
    extra = sorted(p.name for p in path.parent.glob("*.png"))
    print(f"wrote {path}" + (f" and {', '.join(extra)}" if extra else ""))
    return 0
