"""``vlmcompress push``: a checked checkpoint folder to the Hub in one commit."""

from __future__ import annotations

import argparse

from ._args import _add_common


def add_parser(sub) -> None:
    """Register ``push``."""
    pu = sub.add_parser(
        "push",
        help="push a checkpoint folder (weights, config, processor, remote code, report, card, plots) to the Hub",
        description="Check the folder (config parses, weights whole, report valid, card renders), then create the repo "
        "if needed and upload the folder in one commit. The token comes from HF_TOKEN or a saved `hf auth login`; "
        "HF_ENDPOINT selects another Hub. The local folder is never changed; a generated card is re-rendered with "
        "the repo id in its loading snippet.",
        epilog="example:\n  vlmcompress push outputs/heads25 --repo-id me/clip-digits-heads25 --private",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pu.add_argument("folder", help="checkpoint folder holding compression_report.json and weights")
    pu.add_argument("--repo-id", required=True, help="'name' (your namespace) or 'namespace/name'")
    pu.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    pu.add_argument("--revision", help="branch to commit to (created from main if missing)")
    pu.add_argument("--commit-message", help="commit message (default: 'Upload NAME compressed with vlmcompress')")
    _add_common(pu)
    pu.set_defaults(func=cmd_push)


def cmd_push(args):
    from ..hub import push_folder

    url = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                      commit_message=args.commit_message)
    print(f"pushed {args.folder} to {url}")
    return 0
