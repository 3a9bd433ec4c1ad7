"""The teacher store: a teacher's image and text embeddings of every sample of a sharded data set, written once beside
the data (MobileCLIP's reinforced data sets), read by later student runs instead of running the teacher.

``write_store`` writes one ``NAME.npz`` per data shard ``NAME.tar`` (or ``.parquet``/``.arrow``): the samples' keys
and their embeddings, in fp16 or fp32 (stated in the metadata), under a temporary name moved into place; a shard whose
file exists is skipped, so a killed run resumes shard by shard, and process ``i`` of ``n`` writes the shards
``i, i + n, ...``. ``store.json`` (written first) records the teacher's fingerprint and the preprocessing (the
processor's hash and the text padding), checked by ``TeacherStore`` before a run reads it; a folder that is not a
store is never written into.

``TeacherStore.attach(stream)`` adds ``teacher_image_embeds``/``teacher_text_embeds`` to each streamed sample, looked
up by its shard (``__url__``) and key (``__key__``); the trainer then skips the teacher's forward pass, as with the
in-memory cache.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..data.sources import CAPTION_COLUMN, IMAGE_COLUMN
from ..errors import VlmcompressError

STORE_FILENAME = "store.json"
FORMAT = 1
DTYPES = ("float16", "float32")


def preprocessing(processor, padding) -> dict:
    """What the stored embeddings depend on besides the teacher's weights."""
    from .cache import processor_hash

    return {"processor": processor_hash(processor), "padding": padding}


def check_keyed(builder: str, source: str) -> None:
    """The store finds a sample by its WebDataset shard and key; Parquet and Arrow rows have neither."""
    if builder != "webdataset":
        raise VlmcompressError(f"{source}: the teacher store keys samples by their WebDataset shard and key, so it "
                               "needs .tar shards (Parquet and Arrow shards stream, with the teacher on the fly)")


def write_store(teacher, processor, source: str, out, *, dtype: str = "float16", batch_size: int = 256,
                image_column: str = IMAGE_COLUMN, caption_column: str = CAPTION_COLUMN, process_index: int = 0,
                num_processes: int = 1, log=print) -> dict:
    """Write (or complete) the store of ``source``'s shards in ``out``; returns its metadata."""
    from ..adapters import get_adapter
    from ..data.collate import ImageTextCollator
    from ..data.streaming import KEY_COLUMN, open_stream, shard_files
    from ..io import atomic_write_text
    from .cache import teacher_embeddings, teacher_fingerprint

    if dtype not in DTYPES:
        raise VlmcompressError(f"--dtype takes {' or '.join(DTYPES)}, got {dtype!r}")
    found = shard_files(source)
    if not found:
        raise VlmcompressError(f"{source} is not a folder or glob of shards: the teacher store is written per shard "
                               "(WebDataset .tar, .parquet or .arrow)")
    builder, shards = found
    check_keyed(builder, source)
    out = Path(out)
    adapter = get_adapter(teacher)
    padding = adapter.text_padding
    meta = {"format": FORMAT, "teacher_fingerprint": teacher_fingerprint(teacher), **preprocessing(processor, padding),
            "dtype": dtype, "shards": [Path(s).name for s in shards]}
    written = out / STORE_FILENAME
    if written.is_file():
        earlier = json.loads(written.read_text())
        diff = [k for k in ("teacher_fingerprint", "processor", "padding", "dtype") if earlier.get(k) != meta[k]]
        if diff:
            raise VlmcompressError(f"{out} holds a teacher store made with another {', '.join(diff)}: choose another "
                                   "folder, or delete it to start over")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VlmcompressError(f"{out} exists and is not a teacher store (no {STORE_FILENAME}): vlmcompress never "
                               "writes into what it did not make; choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    # the metadata first (every process writes the same): a killed run's folder is a store, and resumes
    atomic_write_text(written, json.dumps(meta, indent=1) + "\n")
    remove_dead_partials(out)
    collator = ImageTextCollator(processor, image_column, caption_column, padding=padding)
    was_training = teacher.training
    teacher.eval()
    try:
        for i, shard in enumerate(shards):
            target = out / f"{Path(shard).stem}.npz"
            if i % num_processes != process_index or target.is_file():
                continue
            keys, images, texts = [], [], []
            rows = []

            def flush():
                img, txt = teacher_embeddings(adapter, collator, [r[image_column] for r in rows],
                                              [r[caption_column] for r in rows])
                keys.extend(r[KEY_COLUMN] for r in rows)
                images.append(img.astype(dtype))
                texts.append(txt.astype(dtype))
                rows.clear()

            for row in open_stream(source, files=[shard], image_column=image_column, caption_column=caption_column,
                                   label_column=None, shuffle_buffer=None):  # the shard alone, in file order
                rows.append(row)
                if len(rows) == batch_size:
                    flush()
            if rows:
                flush()
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}.npz")
            np.savez(tmp, keys=np.array(keys), image=np.concatenate(images), text=np.concatenate(texts))
            os.replace(tmp, target)
            log(f"teacher store: {target.name} ({len(keys)} samples)")
    finally:
        teacher.train(was_training)
    return meta


def remove_dead_partials(out: Path) -> list[str]:
    """Deletes the half-written shard files (``.NAME.npz.tmp-PID.npz``) of writers no longer running: a killed run's;
    a live process's (another writer under ``accelerate launch``) are left alone. Returns the names removed."""
    from ..io import _pid_alive

    removed = []
    for path in out.glob(".*.npz.tmp-*.npz"):
        pid = path.name.rsplit(".tmp-", 1)[1][:-len(".npz")]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


class TeacherStore:
    """A written store, checked against the run's teacher and preprocessing before use."""

    def __init__(self, folder, *, fingerprint: str, processor, padding, source_shards):
        self.folder = Path(folder)
        path = self.folder / STORE_FILENAME
        if not path.is_file():
            raise VlmcompressError(f"{folder} is not a teacher store (no {STORE_FILENAME}): write one with "
                                   "`vlmcompress cache-teacher TEACHER --data SHARDS -o STORE`")
        self.meta = json.loads(path.read_text())
        if self.meta.get("teacher_fingerprint") != fingerprint:
            raise VlmcompressError(f"teacher store {folder} was written by another teacher (fingerprint "
                                   f"{self.meta.get('teacher_fingerprint')}, this run's is {fingerprint})")
        ours = preprocessing(processor, padding)
        changed = [k for k in ours if self.meta.get(k) != ours[k]]
        if changed:
            raise VlmcompressError(f"teacher store {folder} was written with another preprocessing ({', '.join(changed)} "
                                   "differ): write it again with this run's processor")
        missing = [Path(s).stem for s in source_shards if not (self.folder / f"{Path(s).stem}.npz").is_file()]
        if missing:
            raise VlmcompressError(f"teacher store {folder} has no embeddings for {len(missing)} of the data's shards "
                                   f"(e.g. {missing[0]}): run cache-teacher again to complete it")
        self._open: OrderedDict = OrderedDict()

    #: store shards kept in memory, least recently used dropped first: the shuffle buffer holds samples of every shard
    #: read since its oldest sample (a buffer of 1,000 over 300-sample shards read 4 at a time draws from about 8);
    #: with 4 kept, a shard was reopened 1,224 times in 7,520 lookups, 1.2 s of a 17 s, 120-step run (profiled).
    #: 32 shards of 1,000 ViT-B/32-sized samples (512-wide fp16 image and text embeddings) are 64 MiB.
    MAX_OPEN = 32

    def _shard(self, url: str) -> dict:
        name = Path(url).stem
        if name in self._open:
            self._open.move_to_end(name)
        else:
            if len(self._open) >= self.MAX_OPEN:
                self._open.popitem(last=False)
            with np.load(self.folder / f"{name}.npz") as data:
                self._open[name] = {"index": {str(k): i for i, k in enumerate(data["keys"])},
                                    "image": data["image"], "text": data["text"]}
        return self._open[name]

    def lookup(self, row: dict) -> dict:
        """``teacher_image_embeds``/``teacher_text_embeds`` (float32) of one streamed sample."""
        from ..data.streaming import KEY_COLUMN

        url, key = row["__url__"], row[KEY_COLUMN]
        shard = self._shard(url)
        i = shard["index"].get(str(key))
        if i is None:
            raise VlmcompressError(f"teacher store {self.folder} has no sample {key!r} of {Path(url).name}: the data "
                                   "changed since it was written")
        return {"teacher_image_embeds": shard["image"][i].astype(np.float32),
                "teacher_text_embeds": shard["text"][i].astype(np.float32)}

    def attach(self, stream):
        # per row: a batched map gathers the rows (images included) into columns and splits them again, which cost
        # more than the lookup itself
        return stream.map(self.lookup)
