"""Training data that does not fit on local disk, read as a stream (``datasets.IterableDataset``).

A source is streamed when it names shards (a folder holding ``*.tar`` WebDataset shards, ``*.parquet`` or ``*.arrow``
files of one kind, or a glob of them), or a Hub data set asked for with ``streaming``. WebDataset shards hold
``KEY.jpg``/``KEY.png`` (or ``.jpeg``/``.webp``) and ``KEY.txt`` per sample (``KEY.cls``, an integer label,
optional); their image and caption columns are found by those extensions.

Under ``accelerate launch`` each process reads whole shards of its own: accelerate shards a ``datasets``
IterableDataset by its files when it has at least as many as there are processes and batches are not dispatched
from the main process (the Trainer is told so), which ``check_shards`` makes sure of.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import VlmcompressError

#: shard file suffix -> the ``datasets`` builder that streams it
SHARD_BUILDERS = {".tar": "webdataset", ".parquet": "parquet", ".arrow": "arrow"}
#: WebDataset extensions read as the image (first found) and the caption
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTENSION = "txt"
LABEL_EXTENSION = "cls"
#: the column a streamed sample is identified by (WebDataset's key)
KEY_COLUMN = "__key__"


def shard_files(source: str) -> tuple[str, list[str]] | None:
    """(builder, files) when ``source`` names shards: a folder of shard files (not a ``save_to_disk`` folder) or a
    glob; None otherwise."""
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return None  # a datasets.save_to_disk folder: map-style
        files = sorted(str(p) for p in path.iterdir() if p.suffix in SHARD_BUILDERS)
        if not files:
            return None
    elif any(ch in source for ch in "*?["):
        files = sorted(glob.glob(source))
        if not files:
            raise VlmcompressError(f"no file matches {source}: expected WebDataset .tar, .parquet or .arrow shards")
    else:
        return None
    kinds = sorted({Path(f).suffix for f in files})
    if len(kinds) != 1 or kinds[0] not in SHARD_BUILDERS:
        raise VlmcompressError(f"{source} holds {', '.join(kinds)} files: expected shards of one kind (.tar "
                               "WebDataset, .parquet or .arrow)")
    return SHARD_BUILDERS[kinds[0]], files


def is_streamed(source: str | None, streaming: bool = False) -> bool:
    return bool(source) and (streaming or shard_files(source) is not None)


def open_stream(source: str, *, config: str | None = None, split: str = "train", image_column: str = "image",
                caption_column: str = "text", label_column: str | None = "label", seed: int = 0,
                shuffle_buffer: int = 1000, files: list | None = None):
    """The training stream of ``source`` (or of ``files``, some of its shards), shuffled (shard order and a buffer of
    ``shuffle_buffer`` samples, by ``seed``; ``shuffle_buffer=None``: file order), with WebDataset columns renamed to
    ``image_column``/``caption_column``/``label_column``."""
    import datasets

    shards = shard_files(source)
    webdataset = bool(shards) and shards[0] == "webdataset"
    try:
        if shards:
            builder, found = shards
            stream = datasets.load_dataset(builder, data_files={split: files or found}, split=split, streaming=True)
        else:
            stream = datasets.load_dataset(source, config, split=split, streaming=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VlmcompressError(f"cannot stream data set {source!r}: {first}") from exc
    columns = list(stream.column_names or [])
    if webdataset:
        image = next((e for e in IMAGE_EXTENSIONS if e in columns), None)
        rename = {ext: name for ext, name in ((image, image_column), (CAPTION_EXTENSION, caption_column),
                                              (LABEL_EXTENSION, label_column))
                  if ext and name and ext in columns and name not in columns}
        if rename:
            stream = stream.rename_columns(rename)
            columns = [rename.get(c, c) for c in columns]
    missing = [c for c in (image_column, caption_column) if c not in columns]
    if missing:
        hint = (f" (WebDataset shards need KEY.{'/'.join(IMAGE_EXTENSIONS)} and KEY.{CAPTION_EXTENSION} per sample)"
                if webdataset else "")
        raise VlmcompressError(f"streamed data set {source!r} has no column(s) {', '.join(missing)} (it has "
                               f"{', '.join(columns) or 'none'}): pass --image_column/--caption_column{hint}")
    return stream if shuffle_buffer is None else stream.shuffle(seed=seed, buffer_size=shuffle_buffer)


def check_shards(stream, processes: int, source: str) -> None:
    """Each of ``processes`` must get whole shards of its own: one line when there are fewer shards than processes."""
    if processes > 1 and stream.n_shards < processes:
        raise VlmcompressError(f"{source} streams from {stream.n_shards} shard(s) for {processes} processes: each "
                               f"process reads whole shards of its own, so give at least {processes} shards")


def head(stream, samples: int):
    """The first ``samples`` rows of a stream as a map-style ``datasets.Dataset`` (the calibration data of an
    importance, read once)."""
    import datasets

    rows = list(stream.take(samples))
    if not rows:
        raise VlmcompressError("the streamed training data set yielded no rows")
    return datasets.Dataset.from_list(rows, features=stream.features)


def log_keys(examples) -> None:
    """With ``VLMCOMPRESS_LOG_SAMPLE_KEYS=FOLDER`` set, append the key of every sample this process trains on to
    FOLDER/keys-RANK.txt (how the tests see which process read what)."""
    folder = os.environ.get("VLMCOMPRESS_LOG_SAMPLE_KEYS")
    if not folder:
        return
    keys = [ex[KEY_COLUMN] for ex in examples if KEY_COLUMN in ex]
    if keys:
        rank = os.environ.get("RANK", "0")
        with open(Path(folder) / f"keys-{rank}.txt", "a") as f:
            f.write("".join(k + "\n" for k in keys))
