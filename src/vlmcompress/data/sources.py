"""Opening a user's image-caption data set, with errors that fit on one line."""

from __future__ import annotations

import os

from ..errors import VlmcompressError

#: the columns every data set is renamed to (standard_columns), and the default name of each in a user's data set: the
#: one declaration every command, recipe, DataArguments and Python entry point reads
IMAGE_COLUMN, CAPTION_COLUMN, LABEL_COLUMN = "image", "text", "label"


def open_dataset(name: str, *, config: str | None = None, split: str | None = None):
    """A ``datasets.save_to_disk`` folder or a Hub data set (a ``Dataset`` or ``DatasetDict``); any loader failure
    becomes one ``VlmcompressError`` line."""
    import datasets

    from ..embedded import digits
    from ..utils import looks_local

    if name == digits.TRAIN_NAME:
        return digits.load_digits_dataset("train")
    if not os.path.isdir(name) and (looks_local(name) or os.path.exists(name)):
        what = "is a file" if os.path.exists(name) else "does not exist"
        raise VlmcompressError(f"data set folder {name} {what}: expected a datasets.save_to_disk folder or a Hub "
                               "data set id")
    try:
        if os.path.isdir(name):
            ds = datasets.load_from_disk(name)
        else:
            ds = datasets.load_dataset(name, config, split=split)
    except IndexError as exc:  # datasets' own error for a folder saved with no rows
        raise VlmcompressError(f"data set {name!r} is empty (no rows were saved): expected rows with an image, a "
                               "caption and (for evaluation) a label") from exc
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "" if os.path.isdir(name) else ("; a local save_to_disk folder (or, for evaluation, an image folder or "
                                               "a CSV/JSON file) works without the network")
        raise VlmcompressError(f"cannot load data set {name!r}: {first}{hint}") from exc
    parts = ds.values() if isinstance(ds, datasets.DatasetDict) else [ds]
    if all(len(part) == 0 for part in parts):
        raise VlmcompressError(f"data set {name!r} is empty: expected rows with an image, a caption and (for "
                               "evaluation) a label")
    return ds


def standard_columns(dataset, image_column: str, text_column: str, label_column: str | None = None):
    """``dataset`` with its image, caption and label columns renamed to ``image``, ``text`` and ``label``."""
    pairs = ((image_column, IMAGE_COLUMN), (text_column, CAPTION_COLUMN), (label_column, LABEL_COLUMN))
    rename = {k: v for k, v in pairs if k and k in dataset.column_names and k != v}
    return dataset.rename_columns(rename) if rename else dataset
