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
from .sources import CAPTION_COLUMN, IMAGE_COLUMN, LABEL_COLUMN

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


#: WebDataset shards a stream reads at once, a sample from each in turn (what the shuffle buffer mixes)
INTERLEAVED_SHARDS = 4


_BLOCK = 512
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")  # gzip, bzip2, xz: read through tarfile


def _pax_records(data: bytes) -> dict:
    """A pax extended header's ``LENGTH KEY=VALUE\\n`` records."""
    out, i = {}, 0
    while i < len(data):
        space = data.index(b" ", i)
        length = int(data[i:space])
        key, _, value = data[space + 1:i + length - 1].partition(b"=")
        out[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
        i += length
    return out


def _tar_files(path: str):
    """(name, bytes) of each regular file of an uncompressed tar, in file order, read header by header: ustar, GNU
    long names and pax headers (what tarfile and the webdataset tools write). tarfile builds an object per member:
    2.0 of the 6.4 s a 120-step streamed run spent loading data (profiled; 0.4 s here); a shard's members are read
    once, in order, so the headers are parsed here. A bad header checksum is a one-line error naming the shard and
    offset."""
    long_name, pax = None, {}
    with open(path, "rb") as f:
        while True:
            offset = f.tell()
            header = f.read(_BLOCK)
            if len(header) < _BLOCK or not header.strip(b"\0"):
                return  # end of archive (two zero blocks, or a truncated tail as tarfile tolerates)
            stored = header[148:156].rstrip(b"\0 ").strip()
            if not stored or int(stored, 8) != sum(header[:148]) + 256 + sum(header[156:]):
                raise VlmcompressError(f"{path} is not a valid tar: bad header at byte {offset}")
            if header[124] & 0x80:
                raise VlmcompressError(f"{path}: a member at byte {offset} is over 8 GiB (base-256 size): not a "
                                       "WebDataset sample")
            size = int(pax["size"]) if "size" in pax else int(header[124:136].rstrip(b"\0 ").strip() or b"0", 8)
            data = f.read(size)
            if len(data) < size:
                raise VlmcompressError(f"{path} is truncated: its member at byte {offset} ends early")
            f.seek((-size) % _BLOCK, os.SEEK_CUR)
            kind = header[156:157]
            if kind == b"L":  # GNU long name of the next member
                long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
                continue
            if kind == b"x":  # pax header of the next member
                pax = _pax_records(data)
                continue
            if kind in (b"0", b"\0", b"7"):
                name = header[0:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                prefix = header[345:500].split(b"\0", 1)[0] if header[257:263] == b"ustar\0" else b""
                if prefix:
                    name = prefix.decode("utf-8", "surrogateescape") + "/" + name
                yield pax.get("path") or long_name or name, data
            long_name, pax = None, {}  # directories, links, global pax headers: nothing to read


def _tarfile_files(path: str):
    """(name, bytes) of each regular file of any tar tarfile reads (compressed ones)."""
    import tarfile

    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                yield member.name, tar.extractfile(member).read()


def _tar_samples(path: str):
    """(key, {extension: bytes}) of each sample of a WebDataset tar, in file order (a sample's files are adjacent;
    its key is the member's path up to the first dot of its file name)."""
    with open(path, "rb") as f:
        compressed = f.read(6).startswith(_COMPRESSED)
    key, files = None, {}
    for member, data in (_tarfile_files if compressed else _tar_files)(path):
        folder, _, name = member.rpartition("/")
        stem, _, ext = name.partition(".")
        this = f"{folder}/{stem}" if folder else stem
        if this != key and files:
            yield key, files
            files = {}
        key = this
        files[ext.lower()] = data
    if files:
        yield key, files


def _webdataset_rows(shards, columns: dict, interleave: int = 1):
    """The rows of WebDataset ``shards`` (``columns``: extension -> column), ``interleave`` shards at a time, a sample
    from each in turn; images are opened lazily with PIL (decoded when used), ``cls`` read as an integer."""
    import io

    from PIL import Image

    def row(url, key, files):
        out = {KEY_COLUMN: key, "__url__": url}
        for ext, name in columns.items():
            if ext in files:
                data = files[ext]
                out[name] = Image.open(io.BytesIO(data)) if ext in IMAGE_EXTENSIONS else \
                    int(data) if ext == LABEL_EXTENSION else data.decode("utf-8")
        return out

    pending = list(shards)
    open_ = []
    while pending or open_:
        while pending and len(open_) < interleave:
            url = pending.pop(0)
            open_.append((url, _tar_samples(url)))
        for item in list(open_):
            url, samples = item
            sample = next(samples, None)
            if sample is None:
                open_.remove(item)
            else:
                yield row(url, *sample)


def _webdataset_stream(files: list, source: str, image_column: str, caption_column: str, label_column: str | None,
                       interleave: int):
    """WebDataset shards as a ``datasets.IterableDataset`` of our own reading: one shard per generator argument (so
    shuffling and ``split_dataset_by_node`` see every shard), no feature casting (``datasets``' own WebDataset
    builder re-encodes every image to PNG and decodes it again, per sample: it read 4-5x slower here)."""
    import datasets

    peek = _tar_samples(files[0])
    first = next(peek, (None, {}))[1]
    peek.close()  # closes the shard
    image = next((e for e in IMAGE_EXTENSIONS if e in first), None)
    if image is None or CAPTION_EXTENSION not in first:
        raise VlmcompressError(f"streamed data set {source!r} has no column(s) "
                               + ", ".join(c for c, ok in ((image_column, image), (caption_column,
                                                                                   CAPTION_EXTENSION in first)) if not ok)
                               + f" (its first sample has {', '.join(sorted(first)) or 'no files'}): WebDataset shards "
                               f"need KEY.{'/'.join(IMAGE_EXTENSIONS)} and KEY.{CAPTION_EXTENSION} per sample")
    columns = {image: image_column, CAPTION_EXTENSION: caption_column,
               **({LABEL_EXTENSION: label_column} if label_column and LABEL_EXTENSION in first else {})}
    return datasets.IterableDataset.from_generator(_webdataset_rows, gen_kwargs={
        "shards": list(files), "columns": columns, "interleave": interleave})


def open_stream(source: str, *, config: str | None = None, split: str = "train", image_column: str = IMAGE_COLUMN,
                caption_column: str = CAPTION_COLUMN, label_column: str | None = LABEL_COLUMN, seed: int = 0,
                shuffle_buffer: int = 1000, files: list | None = None):
    """The training stream of ``source`` (or of ``files``, some of its shards), shuffled (shard order and a buffer of
    ``shuffle_buffer`` samples, by ``seed``; ``shuffle_buffer=None``: file order, one shard after the other). WebDataset
    shards are read ``INTERLEAVED_SHARDS`` at a time, a sample from each in turn, into the buffer, with their columns
    named ``image_column``/``caption_column``/``label_column`` (plus ``__key__`` and ``__url__``)."""
    import datasets

    shards = shard_files(source)
    webdataset = bool(shards) and shards[0] == "webdataset"
    try:
        if webdataset:
            stream = _webdataset_stream(files or shards[1], source, image_column, caption_column, label_column,
                                        interleave=1 if shuffle_buffer is None else INTERLEAVED_SHARDS)
        elif shards:
            builder, found = shards
            stream = datasets.load_dataset(builder, data_files={split: files or found}, split=split, streaming=True)
        else:
            stream = datasets.load_dataset(source, config, split=split, streaming=True)
    except VlmcompressError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VlmcompressError(f"cannot stream data set {source!r}: {first}") from exc
    if not webdataset:
        columns = list(stream.column_names or [])
        missing = [c for c in (image_column, caption_column) if c not in columns]
        if missing:
            raise VlmcompressError(f"streamed data set {source!r} has no column(s) {', '.join(missing)} (it has "
                                   f"{', '.join(columns) or 'none'}): pass --image_column/--caption_column")
    if shuffle_buffer is None:
        return stream
    if webdataset:  # the generator interleaves shards itself: datasets' interleaving hands over each sample between
        # threads (3x slower here)
        return stream.shuffle(seed=seed, buffer_size=shuffle_buffer, max_buffer_input_shards=1)
    return stream.shuffle(seed=seed, buffer_size=shuffle_buffer)


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
