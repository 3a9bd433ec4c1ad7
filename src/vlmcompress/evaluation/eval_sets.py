"""Evaluation sets: the user's data, opened from wherever it lives, in the shape the protocols need.

``load_eval_set(name)`` takes
  - ``vlmcompress/digits-test``: the embedded two-digit benchmark (returned as ``EMBEDDED``, the harness's own path);
  - ``none``: no accuracy (size, memory and latency only; returned as ``NO_EVAL``);
  - a ``datasets.save_to_disk`` folder, an image folder (one subfolder per class: ``imagefolder``, optionally with a
    ``metadata.csv``/``metadata.jsonl`` of captions), a CSV / JSON / JSON Lines file of image paths (relative to the
    file) and captions, or a Hub data set name (loaded with ``datasets.load_dataset``).

An ``EvalSet`` holds one row per image: the image, its captions (a list: one or several per image, as Flickr30k/COCO
give them; rows that repeat an image with another caption are grouped) and its label (a ``ClassLabel`` index, whose
names are the zero-shot classes).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..embedded import digits
from ..errors import VlmcompressError
from ..report import EVAL_SPLIT, ON_BAD_SAMPLE as _ON_BAD_SAMPLE
from ..utils import progress

EMBEDDED = digits.DATASET_NAME
NO_EVAL = "none"
IMAGE_COLUMNS = ("image", "img", "jpg", "png", "image_path", "file_name", "filepath")
CAPTION_COLUMNS = ("captions", "caption", "text", "sentences", "sentence", "txt")
LABEL_COLUMNS = ("label", "labels", "class", "fine_label")
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}
#: files an image folder's class subfolders are read for
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")
#: subfolder names ``datasets``' imagefolder reads as splits (and so would not read as classes)
SPLIT_NAMES = ("train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval", "evaluation")
#: what to do with an unreadable image, an empty class folder or an empty caption
ON_BAD_SAMPLE = _ON_BAD_SAMPLE  # declared in report.py, beside the evaluation set's other options


def to_rgb(image):
    """A PIL image as 8-bit RGB, from any mode: 16- and 32-bit integer and float greyscale are scaled to 0-255 by
    their range (``convert("RGB")`` clips a 16-bit image to white); palette, LA, CMYK and the rest through PIL."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and arr.size and arr.max() <= 1.0:
            scale = 1.0
        elif image.mode.startswith("I;16") or (arr.size and arr.max() > 255):
            scale = 65535.0 if image.mode.startswith("I;16") or arr.max() <= 65535 else float(arr.max())
        else:
            scale = 255.0
        grey = np.clip(np.rint(arr / scale * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")


@dataclass
class EvalSet:
    """One row per image. ``images`` is a ``datasets`` column (decoded lazily, batch by batch)."""

    name: str
    dataset: object  # datasets.Dataset with the image column named "image"
    captions: list | None = None  # list of lists of strings, one list per image
    labels: np.ndarray | None = None
    class_names: list | None = None
    split: str | None = None
    source_columns: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.dataset)

    def images(self, sl=slice(None)):
        return [to_rgb(image) for image in self.dataset[sl]["image"]]

    def describe(self) -> str:
        parts = [f"{len(self)} images"]
        if self.class_names:
            parts.append(f"{len(self.class_names)} classes")
        if self.captions:
            parts.append(f"{sum(len(c) for c in self.captions)} captions")
        return f"{self.name}" + (f" [{self.split}]" if self.split else "") + f": {', '.join(parts)}"


def _first(columns, candidates):
    return next((c for c in candidates if c in columns), None)


def _image_key(value) -> str:
    """Identity of an undecoded image (path, else content hash): rows repeating an image are grouped by it."""
    if isinstance(value, dict):
        if value.get("path"):
            return str(value["path"])
        if value.get("bytes") is not None:
            return hashlib.sha1(value["bytes"]).hexdigest()
    return repr(value)


def _unreadable(value) -> str | None:
    """Why an undecoded image cannot be opened (its header read), or None."""
    import io

    from PIL import Image

    try:
        source = value.get("path") if isinstance(value, dict) and value.get("bytes") is None else None
        if source is None:
            data = value.get("bytes") if isinstance(value, dict) else None
            if data is None:
                return "no image"
            source = io.BytesIO(data)
        with Image.open(source) as image:
            image.size  # noqa: B018 - the header is read
        return None
    except Exception as exc:  # noqa: BLE001 - every reason PIL has is reported the same way
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _bad(name: str, what: str, count: int, example: str, on_bad_sample: str) -> None:
    """Refuse (``error``) or warn in one line (``skip``) about ``count`` bad samples of kind ``what``."""
    import sys

    if on_bad_sample == "error":
        raise VlmcompressError(f"the evaluation data set {name}: {count} {what}, e.g. {example}: fix or remove them, or "
                               "pass --on-bad-sample skip to leave them out (counted in a warning)")
    print(f"warning: the evaluation data set {name}: {count} {what} left out (--on-bad-sample skip), e.g. {example}",
          file=sys.stderr)


def eval_set_from_dataset(dataset, name: str | None = None, *, image_column: str | None = None,
                          caption_column: str | None = None, label_column: str | None = None,
                          max_samples: int | None = None, seed: int = 0, split: str | None = None,
                          on_bad_sample: str = _ON_BAD_SAMPLE[0]) -> EvalSet:
    """An ``EvalSet`` from a ``datasets.Dataset``; columns are found by their usual names unless given. Every image's
    header is read first: an unreadable image, like an image whose caption is empty, is refused or, with
    ``on_bad_sample="skip"``, left out with one warning line that counts them."""
    import datasets

    if on_bad_sample not in ON_BAD_SAMPLE:
        raise VlmcompressError(f"on_bad_sample must be one of {', '.join(ON_BAD_SAMPLE)}, got {on_bad_sample!r}")

    if dataset is None or len(dataset) == 0:
        named = f" {name}" if name else ""
        raise VlmcompressError(f"the evaluation data set{named} is empty: expected rows with an image and a label or "
                               "caption(s)")
    cols = dataset.column_names
    name = name or getattr(dataset.info, "dataset_name", None) or "user data set"
    for flag, given in (("--eval-image-column", image_column), ("--eval-caption-column", caption_column),
                        ("--eval-label-column", label_column)):
        if given and given not in cols:
            raise VlmcompressError(f"the evaluation data set {name} has no column {given!r} (it has {', '.join(cols)}): "
                                   f"fix {flag}")
    image_column = image_column or _first(cols, IMAGE_COLUMNS) or next(
        (c for c, f in dataset.features.items() if isinstance(f, datasets.Image)), None)
    if image_column is None:
        raise VlmcompressError(f"the evaluation data set {name} has no image column (it has {', '.join(cols)}): "
                               "name it with --eval-image-column")
    caption_column = caption_column or _first(cols, CAPTION_COLUMNS)
    label_column = label_column or _first(cols, LABEL_COLUMNS)
    if not isinstance(dataset.features[image_column], datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image())
    keep = [c for c in (image_column, caption_column, label_column) if c]
    dataset = dataset.select_columns(keep)

    # one row per image: rows that repeat an image (one caption per row) are grouped
    undecoded = dataset.cast_column(image_column, datasets.Image(decode=False))[image_column]
    first_row: dict = {}
    rows_of: dict = {}
    for i, value in enumerate(undecoded):
        key = _image_key(value)
        first_row.setdefault(key, i)
        rows_of.setdefault(key, []).append(i)
    unreadable = {}
    for key, i in progress(list(first_row.items()), desc="checking the evaluation images", leave=False):
        why = _unreadable(undecoded[i])
        if why is not None:
            unreadable[key] = why
    if unreadable:
        key = next(iter(unreadable))
        _bad(name, "image(s) cannot be read", len(unreadable), f"{key} ({unreadable[key]})", on_bad_sample)
        for key in unreadable:
            del first_row[key]
        if not first_row:
            raise VlmcompressError(f"the evaluation data set {name}: no image can be read")
    captions = None
    if caption_column:
        # every caption of every image, duplicates included (CLIP_benchmark's protocol); an empty or missing one is
        # a bad sample, never scored as the text "None"
        raw = dataset[caption_column]
        captions, empty, example = [], 0, None
        for key in list(first_row):
            texts = []
            for i in rows_of[key]:
                value = raw[i]
                for text in (value if isinstance(value, (list, tuple)) else [value]):
                    if text is None or not str(text).strip():
                        empty += 1
                        example = example or key
                    else:
                        texts.append(str(text))
            if texts:
                captions.append(texts)
            elif on_bad_sample == "skip":
                del first_row[key]
            else:
                captions.append(texts)
        if empty:
            _bad(name, f"empty caption(s) in {caption_column!r}", empty, f"one of {example}'s", on_bad_sample)
        if not first_row:
            raise VlmcompressError(f"the evaluation data set {name}: no image has a caption in {caption_column!r}")
    order = list(first_row.values())
    labels = class_names = None
    if label_column:
        feature = dataset.features[label_column]
        if isinstance(feature, datasets.ClassLabel):
            class_names = list(feature.names)
            labels = np.asarray(dataset[label_column])[order]
        else:
            labels = None  # a label without names cannot make zero-shot prompts; check_task says so when asked
            class_names = None
    dataset = dataset.select(order)
    if image_column != "image":
        dataset = dataset.rename_column(image_column, "image")
    if max_samples is not None and max_samples < len(dataset):
        pick = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:max_samples])
        dataset = dataset.select(pick.tolist())
        captions = [captions[i] for i in pick] if captions is not None else None
        labels = labels[pick] if labels is not None else None
    return EvalSet(name=name, dataset=dataset, captions=captions, labels=labels, class_names=class_names, split=split,
                   source_columns={"image": image_column, "captions": caption_column, "label": label_column})


def _pick_split(ds, name, split):
    import datasets

    if not isinstance(ds, datasets.DatasetDict):
        return ds, split
    if split in ds:
        return ds[split], split
    if len(ds) == 1:  # one file or one folder: its only split, whatever it is called
        (only,) = ds
        return ds[only], only
    raise VlmcompressError(f"evaluation data set {name!r} has no split {split!r} (it has {', '.join(ds)}): pass "
                           "--eval-split")


def _load_table(path: Path, image_column: str | None):
    """A CSV/JSON(L) file of image paths and captions; paths are relative to the file's folder."""
    import datasets

    try:
        ds = datasets.load_dataset(TABLE_SUFFIXES[path.suffix.lower()], data_files=str(path), split="train")
    except Exception as exc:  # noqa: BLE001 - a malformed file is one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VlmcompressError(f"cannot read evaluation file {path}: {first}") from exc
    column = image_column or _first(ds.column_names, IMAGE_COLUMNS)
    if column is None or column not in ds.column_names:
        raise VlmcompressError(f"evaluation file {path} has no image path column (it has {', '.join(ds.column_names)}): "
                               "name it with --eval-image-column")
    root = path.resolve().parent

    def absolute(row):
        p = Path(str(row[column])).expanduser()
        return {column: str(p if p.is_absolute() else root / p)}

    ds = ds.map(absolute)
    missing = [p for p in ds[column] if not os.path.isfile(p)]
    if missing:
        raise VlmcompressError(f"evaluation file {path}: {len(missing)} image(s) not found, e.g. {missing[0]}")
    return ds.cast_column(column, datasets.Image()), column


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _class_folder(path: Path, name: str, split: str, on_bad_sample: str):
    """A folder of class subfolders read as such, whatever the classes are called (``datasets``' imagefolder reads
    ``train``, ``test``, ``val``... and names starting so as splits, dropping the other classes): the
    ``datasets.Dataset`` (image paths, a ClassLabel of the subfolder names) and the split used. A folder whose
    subfolders are all split names holding class subfolders (``test/cat/1.jpg``) is read at ``split``. None: not
    this layout (no subfolder holds an image)."""
    import datasets

    subfolders = _subfolders(path)
    used = None
    splits = {d.name.lower(): d for d in subfolders if d.name.lower() in SPLIT_NAMES}
    if subfolders and len(splits) == len(subfolders) and all(
            _subfolders(d) and not any(f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())
            for d in subfolders):
        if split.lower() in splits:
            used = splits[split.lower()].name
        elif len(splits) == 1:
            used = subfolders[0].name
        else:
            raise VlmcompressError(f"evaluation folder {name} has split folders {', '.join(d.name for d in subfolders)}"
                                   f" and none is {split!r}: pass --eval-split")
        path = path / used
        subfolders = _subfolders(path)
    images = {d.name: _images_in(d) for d in subfolders}
    if not any(images.values()):
        return None
    empty = [c for c, files in images.items() if not files]
    if empty:
        if on_bad_sample == "error":
            raise VlmcompressError(f"evaluation folder {name}: class folder(s) {', '.join(empty[:3])} hold no image: "
                                   "remove them, or pass --on-bad-sample skip (such a class stays among the zero-shot "
                                   "classes, with no image of its own)")
        import sys

        print(f"warning: evaluation folder {name}: {len(empty)} class folder(s) hold no image, e.g. {empty[0]} "
              "(--on-bad-sample skip: kept among the zero-shot classes)", file=sys.stderr)
    classes = list(images)
    paths = [str(f) for c in classes for f in images[c]]
    labels = [i for i, c in enumerate(classes) for _ in images[c]]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    return datasets.Dataset.from_dict({"image": paths, "label": labels}, features=features), used


def load_eval_set(name: str, *, split: str = EVAL_SPLIT, config: str | None = None, image_column: str | None = None,
                  caption_column: str | None = None, label_column: str | None = None,
                  max_samples: int | None = None, seed: int = 0, on_bad_sample: str = _ON_BAD_SAMPLE[0]):
    """``EMBEDDED``, ``NO_EVAL`` or an ``EvalSet`` for ``name`` (see the module docstring)."""
    import datasets

    from ..utils import looks_local

    if name == EMBEDDED:
        return EMBEDDED
    if str(name).lower() == NO_EVAL:
        return NO_EVAL
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() not in TABLE_SUFFIXES:
            raise VlmcompressError(f"evaluation file {name} is not CSV or JSON: expected a .csv, .tsv, .json or .jsonl "
                                   "file of image paths and captions, an image folder or a save_to_disk folder")
        ds, image_column = _load_table(path, image_column)
        used = None
    elif path.is_dir():
        saved = any((path / f).is_file() for f in ("dataset_info.json", "dataset_dict.json", "state.json"))
        found = None if saved or any(path.glob("metadata.*")) else _class_folder(path, name, split, on_bad_sample)
        if found:
            ds, used = found
        else:
            if saved:
                from ..data.sources import open_dataset

                ds = open_dataset(str(path))
            else:  # captions in a metadata.csv / metadata.jsonl, or images with no class subfolders: imagefolder
                try:
                    ds = datasets.load_dataset("imagefolder", data_dir=str(path))
                except Exception as exc:  # noqa: BLE001 - a folder with no images is one line
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise VlmcompressError(f"evaluation folder {name} is neither a save_to_disk folder nor an image "
                                           f"folder (class subfolders of images): {first}") from exc
            ds, used = _pick_split(ds, name, split)
    elif looks_local(name):
        raise VlmcompressError(f"evaluation data set {name} does not exist: expected a save_to_disk folder, an image "
                               f"folder, a CSV/JSON file, a Hub data set name, {EMBEDDED} or {NO_EVAL}")
    else:
        from ..data.sources import open_dataset

        ds = open_dataset(name, config=config, split=None)
        ds, used = _pick_split(ds, name, split)
    return eval_set_from_dataset(ds, name, image_column=image_column, caption_column=caption_column,
                                 label_column=label_column, max_samples=max_samples, seed=seed, split=used,
                                 on_bad_sample=on_bad_sample)


def is_embedded_model(path, _depth: int = 0) -> bool:
    """Whether ``path`` is one of the embedded teachers, or a folder made from one (its report names an embedded
    base model, directly or through earlier vlmcompress folders, or was measured on the embedded benchmark): those
    are evaluated on the digits when no evaluation set is named."""
    import json

    from ..io import REPORT_FILENAME

    if path is None:
        return True
    folder = Path(str(path)).expanduser()
    assets = Path(__file__).resolve().parent.parent / "assets"
    try:
        if folder.resolve().parent == assets:
            return True
    except OSError:
        return False
    report = folder / REPORT_FILENAME
    if _depth > 8 or not report.is_file():
        return False
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return False
    if any(isinstance(data.get(k), dict) and data[k].get("eval_dataset") == EMBEDDED for k in ("after", "before")):
        return True
    base = data.get("base_model")
    return isinstance(base, str) and base != str(path) and Path(base).expanduser().is_dir() and \
        is_embedded_model(base, _depth + 1)


def embedded_images_per_number(dataset, images_per_number: int | None, max_samples: int | None,
                               flag: str = "--max-eval-samples") -> int | None:
    """Test images per number on the embedded benchmark (``dataset`` is ``EMBEDDED``): ``images_per_number``
    (None: 100), cut so that its 100 numbers hold at most ``max_samples`` images, at least one each (said in one line
    when cut). Any other ``dataset`` gets ``images_per_number`` back: ``load_eval_set`` draws ``max_samples`` itself."""
    if not (isinstance(dataset, str) and dataset == EMBEDDED) or not max_samples:
        return images_per_number
    per = images_per_number or 100
    if max_samples >= per * digits.NUM_CLASSES:
        return images_per_number
    cut = max(1, max_samples // digits.NUM_CLASSES)
    print(f"note: {flag} {max_samples} on the embedded benchmark ({digits.NUM_CLASSES} numbers): {cut} test image(s) "
          f"per number, {cut * digits.NUM_CLASSES} in all", flush=True)
    return cut


def resolve_eval_set(name: str | None, model_path, **kwargs):
    """What a command evaluates on: the named set, else the embedded benchmark for an embedded model, else
    ``NO_EVAL`` (accuracy not measured; the command says so)."""
    if name:
        return load_eval_set(name, **kwargs)
    return EMBEDDED if is_embedded_model(model_path) else NO_EVAL
