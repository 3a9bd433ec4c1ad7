"""``vlmcompress cache-teacher``: a teacher's embeddings of a sharded data set, stored once."""

from __future__ import annotations

import argparse

from ..distillation.store import DTYPES, write_store
from ._args import _add_common, _whole_number, defaults_of
from ._common import _check_local_model, _set_verbosity


def add_parser(sub) -> None:
    """Register ``cache-teacher``."""
    ct = sub.add_parser(
        "cache-teacher",
        help="write a teacher's image and text embeddings of every sample of a sharded data set (a teacher store)",
        description="One NAME.npz per data shard (the samples' keys and embeddings) and store.json (the teacher's "
        "fingerprint, the preprocessing, the dtype). A shard already written is skipped, so a killed run resumes; "
        "under `accelerate launch` each process writes its own shards. `vlmcompress distill --dataset_name SHARDS "
        "--teacher_store STORE` then reads the embeddings instead of running the teacher.",
        epilog="example:\n  vlmcompress cache-teacher --data shards/ -o teacher-store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ct.add_argument("teacher", nargs="?", default=None,
                    help="teacher: save_pretrained folder or Hub id (default: the embedded CLIP teacher)")
    ct.add_argument("--data", required=True, metavar="SHARDS",
                    help="a folder or glob of WebDataset .tar, .parquet or .arrow shards")
    ct.add_argument("-o", "--output-dir", required=True, help="the store's folder (created; completed if partial)")
    d = defaults_of(write_store)
    ct.add_argument("--dtype", default=d["dtype"], choices=DTYPES, help=f"stored precision (default {d['dtype']})")
    ct.add_argument("--batch-size", type=_whole_number(1), default=d["batch_size"],
                    help=f"teacher batch size (default {d['batch_size']})")
    ct.add_argument("--image-column", default=d["image_column"],
                    help=f"image column of .parquet/.arrow shards (default {d['image_column']}; WebDataset: found by "
                    "extension)")
    ct.add_argument("--caption-column", default=d["caption_column"],
                    help=f"caption column of .parquet/.arrow shards (default {d['caption_column']}; WebDataset: "
                    "KEY.txt)")
    ct.add_argument("--trust-remote-code", action="store_true", help="allow the teacher's own modeling code")
    _add_common(ct)
    ct.set_defaults(func=cmd_cache_teacher)


def cmd_cache_teacher(args):
    _set_verbosity(args)
    _check_local_model(args.teacher)  # before torch is imported
    from accelerate import PartialState

    from ..distillation.store import write_store
    from ..loading import load_checkpoint

    state = PartialState()  # under `accelerate launch`, process i of n writes shards i, i + n, ...
    teacher, processor, path = load_checkpoint(args.teacher, trust_remote_code=args.trust_remote_code,
                                               torch_for="the teacher store")
    meta = write_store(teacher, processor, args.data, args.output_dir, dtype=args.dtype, batch_size=args.batch_size,
                       image_column=args.image_column, caption_column=args.caption_column,
                       process_index=state.process_index, num_processes=state.num_processes)
    if state.is_main_process:
        print(f"wrote the teacher store of {len(meta['shards'])} shard(s) of {args.data} ({meta['dtype']}) to "
              f"{args.output_dir}; distill reads it with --teacher_store {args.output_dir}")
    return 0
