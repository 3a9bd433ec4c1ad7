"""Evaluation on the user's data: the CLIP_benchmark protocols (exact on hand-made embeddings), the shipped evaluate
metrics (exact on hand-counted captions), every way an evaluation set is given (image folder, CSV, JSON Lines,
save_to_disk) on real photos and digits that ship in PyPI wheels (scikit-image, scikit-learn), and the bad inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_clip
from vlmcompress.errors import VlmcompressError
from vlmcompress.evaluation import (EMBEDDED, NO_EVAL, evaluate_model, load_eval_set, load_metric, load_templates,
                                    resolve_eval_set)
from vlmcompress.evaluation.protocols import retrieval_metrics, zero_shot_metrics

# scikit-image's photos that ship in its wheel, with the names that serve as zero-shot classes and two captions each
PHOTOS = {
    "astronaut": ("astronaut", ["an astronaut in a white space suit", "a woman astronaut smiling at the camera"]),
    "chelsea": ("cat", ["a ginger cat lying down", "a tabby cat looking to the side"]),
    "coffee": ("coffee", ["a cup of coffee on a saucer", "a coffee cup seen from above"]),
    "rocket": ("rocket", ["a rocket on its launch pad", "a space rocket ready for launch"]),
    "camera": ("cameraman", ["a man with a camera on a tripod", "a black and white photo of a photographer"]),
    "coins": ("coins", ["old coins on a dark table", "rows of small coins"]),
}


def _photos():
    import skimage.data
    from PIL import Image

    out = {}
    for fn, (name, captions) in PHOTOS.items():
        image = Image.fromarray(getattr(skimage.data, fn)()).convert("RGB")
        out[fn] = (name, captions, image)
    return out


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """An image folder (one subfolder per class, two views of each photo) and a CSV of the same images with two
    captions each, one caption per row (rows repeat the image), plus a JSON Lines file with caption lists."""
    root = tmp_path_factory.mktemp("photos")
    rows, lines = [], []
    for fn, (name, captions, image) in _photos().items():
        (root / "classes" / name).mkdir(parents=True)
        for view, im in (("a", image), ("b", image.transpose(0))):  # the photo and its mirror image
            im.resize((64, 64)).save(root / "classes" / name / f"{fn}_{view}.png")
        rel = f"classes/{name}/{fn}_a.png"
        rows += [(rel, c) for c in captions]
        lines.append(json.dumps({"file_name": rel, "captions": captions}))
    (root / "captions.csv").write_text("image,caption\n" + "".join(f"{p},{c}\n" for p, c in rows))
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_zero_shot_protocol_is_exact():
    """Top-1, top-5 and mean per-class recall on logits built by hand (class embeddings = identity, so the image
    embeddings are the logits): 4 images of class 0 (3 right, 1 with class 0 last), 1 of class 1 (wrong, third)."""
    class_emb = torch.eye(6)
    right = [1.0, 0.5, 0.4, 0.3, 0.2, 0.1]
    image_emb = torch.tensor([right] * 3 + [[0.1, 0.2, 0.3, 0.4, 0.5, 1.0]] + [[0.6, 0.5, 1.0, 0.2, 0.3, 0.1]])
    m = zero_shot_metrics(image_emb, class_emb, [0, 0, 0, 0, 1])
    assert m["zero_shot_accuracy"] == pytest.approx(3 / 5)
    assert m["zero_shot_top5_accuracy"] == pytest.approx(4 / 5)
    assert m["zero_shot_mean_per_class_recall"] == pytest.approx((3 / 4 + 0) / 2)  # per class, not per image
    assert m["zero_shot_classes"] == 6


def test_retrieval_protocol_counts_hits_by_image_not_by_label():
    """Three images, five captions (image 0 has two). Caption 4 is nearest to image 0 but belongs to image 2: a miss,
    however alike the two images are."""
    image_emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    text_emb = torch.tensor([[1.0, 0.0], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [1.0, 0.05]])
    owner = [0, 0, 1, 1, 2]
    m = retrieval_metrics(image_emb, torch.nn.functional.normalize(text_emb, dim=-1), owner, ks=(1, 2))
    sim = image_emb @ torch.nn.functional.normalize(text_emb, dim=-1).t()
    i2t1 = np.mean([owner[int(sim[i].argmax())] == i for i in range(3)])
    t2i1 = np.mean([int(sim[:, j].argmax()) == owner[j] for j in range(5)])
    assert m["recall_at_1_i2t"] == pytest.approx(i2t1) and m["recall_at_1_t2i"] == pytest.approx(t2i1)
    assert t2i1 < 1  # caption 4 retrieves image 0, not its own image 2: by label-free ground truth a miss
    assert m["recall_at_2_i2t"] >= m["recall_at_1_i2t"] and m["retrieval_texts"] == 5 and m["retrieval_images"] == 3


def test_top5_and_recall_at_k_are_not_measured_where_they_are_right_by_construction():
    """Top-5 over 5 classes or fewer, and recall@k over k candidates or fewer, find every positive whatever the model:
    they are None (not measured, absent from cards), not a trivial 100%."""
    m = zero_shot_metrics(torch.eye(4)[[0, 1, 2, 3]].flip(0), torch.eye(4), [0, 1, 2, 3])  # every image wrong
    assert m["zero_shot_accuracy"] == 0 and m["zero_shot_top5_accuracy"] is None
    ranked = torch.arange(6, 0, -1).float().repeat(3, 1)  # class 0 first ... class 5 last, for every image
    six = zero_shot_metrics(ranked, torch.eye(6), [4, 4, 5])  # the right class 5th, 5th and 6th
    assert six["zero_shot_accuracy"] == 0 and six["zero_shot_top5_accuracy"] == pytest.approx(2 / 3)
    image_emb, text_emb = torch.eye(3), torch.eye(3)[[2, 0, 1, 1, 0]]  # 3 images, 5 captions
    m = retrieval_metrics(image_emb, text_emb, [0, 1, 2, 2, 1], ks=(1, 3, 5))
    assert m["recall_at_1_i2t"] is not None and m["recall_at_3_i2t"] is not None  # 3 < 5 captions
    assert m["recall_at_5_i2t"] is None and m["recall_at_3_t2i"] is None and m["recall_at_5_t2i"] is None
    assert m["recall_at_1_t2i"] == pytest.approx(0.0)


def test_shipped_metrics_load_offline_and_equal_sacrebleu_and_rouge_score():
    """BLEU-4 and ROUGE-L through evaluate.load(<folder>) (HF_HUB_OFFLINE=1 in this process): the counts by hand, and
    sacrebleu's and rouge-score's own results, on captions with apostrophes, commas, accents and decimals (where a
    home-made tokenizer drifts) and references of uneven number."""
    import sacrebleu
    from rouge_score import rouge_scorer

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    bleu = load_metric("bleu").compute(predictions=["the cat sat on the mat"], references=[["the cat sat on a mat"]])
    # clipped n-gram matches 5/6, 3/5, 2/4, 1/3; equal lengths: no brevity penalty
    assert bleu["bleu"] == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    assert bleu["brevity_penalty"] == 1.0 and "tok:13a" in bleu["signature"] and "case:lc" in bleu["signature"]
    short = load_metric("bleu").compute(predictions=["the cat"], references=[["the cat sat on a mat", "the cat sat"]])
    assert short["bleu"] == 0.0  # no 3- or 4-grams: BLEU-4 is 0 without smoothing
    predictions = ["a dog's toy, red and blue", "Café au lait at 3.5 degrees", "two cats"]
    references = [["the dog's toy is red and blue"], ["café au lait at 3.5 degrees", "a cup of coffee"],
                  ["two cats on a sofa", "a pair of cats", "cats, two of them"]]
    ours = load_metric("bleu").compute(predictions=predictions, references=references)
    streams = [[r[i] if i < len(r) else None for r in references] for i in range(3)]
    theirs = sacrebleu.corpus_bleu(predictions, streams, tokenize="13a", lowercase=True, smooth_method="none")
    assert ours["bleu"] == pytest.approx(theirs.score / 100) and ours["bleu"] > 0
    rouge = load_metric("rouge").compute(predictions=predictions, references=references)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = sum(scorer.score_multi(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)) / 3
    assert rouge["rougeL"] == pytest.approx(expected)
    one = load_metric("rouge").compute(predictions=["a cat on a mat"], references=[["a dog", "a cat sat on the mat"]])
    # LCS with the best reference "a cat ... on ... mat" = 4 tokens: P 4/5, R 4/6
    assert one["rougeL"] == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))


def test_templates_built_in_and_from_a_file(tmp_path):
    assert load_templates("default")[0] == "a photo of a {}."
    openai = load_templates("openai_imagenet")
    assert len(openai) == 80 and len(set(openai)) == 80 and all("{}" in t for t in openai)
    good = tmp_path / "t.txt"
    good.write_text("# mine\na snapshot of {}\n\nthe {} again\n")
    assert load_templates(str(good)) == ["a snapshot of {}", "the {} again"]
    bad = tmp_path / "bad.txt"
    bad.write_text("a snapshot of {}\na photo of a dog\n")
    with pytest.raises(VlmcompressError, match=r"1 line\(s\) without \{\} .*'a photo of a dog'"):
        load_templates(str(bad))


def test_every_way_of_giving_an_evaluation_set(photo_folder, tmp_path):
    """Image folder: classes from the subfolders; CSV: one caption per row, rows of one image grouped; JSON Lines:
    a caption list per image; save_to_disk: scikit-learn's real digits with their class names."""
    import datasets
    from PIL import Image
    from sklearn.datasets import load_digits

    classes = load_eval_set(str(photo_folder / "classes"))
    assert len(classes) == 12 and sorted(classes.class_names) == sorted(n for n, _ in PHOTOS.values())
    assert classes.captions is None and classes.split is None  # class subfolders: no splits
    table = load_eval_set(str(photo_folder / "captions.csv"))
    assert len(table) == 6 and [len(c) for c in table.captions] == [2] * 6 and table.class_names is None
    assert table.captions[1] == PHOTOS["chelsea"][1]
    lines = load_eval_set(str(photo_folder / "captions.jsonl"))
    assert lines.captions == table.captions
    assert np.asarray(lines.images(slice(0, 1))[0]).shape == (64, 64, 3)

    digits = load_digits()
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    pick = np.concatenate([np.flatnonzero(digits.target == d)[:3] for d in range(10)])
    images = [Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).convert("RGB") for i in pick]
    ds = datasets.Dataset.from_dict({"img": images, "digit": digits.target[pick].tolist()},
                                    features=datasets.Features({"img": datasets.Image(),
                                                                "digit": datasets.ClassLabel(names=names)}))
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "digits"))
    saved = load_eval_set(str(tmp_path / "digits"), label_column="digit", max_samples=20)
    assert saved.class_names == names and len(saved) == 20 and saved.split == "test"
    assert saved.source_columns["image"] == "img"

    assert load_eval_set(EMBEDDED) == EMBEDDED and load_eval_set("none") == NO_EVAL
    assert resolve_eval_set(None, None) == EMBEDDED  # the embedded teacher
    assert resolve_eval_set(None, str(tmp_path)) == NO_EVAL  # anything else, unless named


def test_zero_shot_and_retrieval_on_real_photos(processor, photo_folder):
    """The harness on a user's image folder and caption file: every protocol key measured, top-5 of 6 classes at
    least as high as top-1, retrieval over all 12 captions."""
    model = tiny_clip(processor)
    m = evaluate_model(model, processor, load_eval_set(str(photo_folder / "classes")), templates="openai_imagenet",
                       latency_repeats=1, latency_batch_size=4, measure_size=False)
    assert m["zero_shot_classes"] == 6 and m["eval_templates"] == "openai_imagenet" and m["eval_protocols"] == ["zero_shot"]
    assert 0 <= m["zero_shot_accuracy"] <= m["zero_shot_top5_accuracy"] <= 1
    assert 0 <= m["zero_shot_mean_per_class_recall"] <= 1 and m["recall_at_1_i2t"] is None
    m = evaluate_model(model, processor, load_eval_set(str(photo_folder / "captions.csv")), latency_repeats=0,
                       measure_size=False)
    assert m["eval_protocols"] == ["retrieval"] and m["retrieval_texts"] == 12 and m["retrieval_images"] == 6
    assert m["recall_at_1_i2t"] <= m["recall_at_5_i2t"] <= m["recall_at_10_i2t"] == 1.0  # 10 >= 6 images' captions
    assert m["recall_at_10_t2i"] is None and m["zero_shot_accuracy"] is None  # 10 >= 6 images: not measured


def test_embedded_captioner_scores_far_above_a_random_one_on_captions(blip_processor):
    """BLEU-4 and ROUGE-L on digit images with three reference captions each (the embedded captions): the trained
    embedded captioner must beat a random-init one of the same shape by a wide margin."""
    import datasets

    from conftest import tiny_blip
    from vlmcompress.embedded import digits
    from vlmcompress.embedded.blip_captioner import blip_teacher_path
    from vlmcompress.loading import load_checkpoint

    ds = digits.load_digits_dataset("test", images_per_number=1, numbers=range(0, 100, 5))
    refs = [[digits.caption(n, t) for t in digits.TEMPLATES[:3]] for n in ds["label"]]
    user = datasets.Dataset.from_dict({"image": ds["image"], "captions": refs},
                                      features=datasets.Features({"image": datasets.Image(),
                                                                  "captions": datasets.Sequence(datasets.Value("string"))}))
    teacher, proc, _ = load_checkpoint(blip_teacher_path())
    trained = evaluate_model(teacher, proc, user, latency_repeats=0, measure_size=False)
    random = evaluate_model(tiny_blip("BlipForConditionalGeneration"), blip_processor, user, latency_repeats=0,
                            measure_size=False)
    assert trained["eval_protocols"] == ["captioning"] and trained["zero_shot_accuracy"] is None
    assert trained["bleu_4"] > 0.3 and trained["rouge_l"] > 0.6, trained
    assert random["bleu_4"] < 0.1 and trained["rouge_l"] > random["rouge_l"] + 0.3, random


from conftest import cli_as_process  # noqa: E402


def _cli(*args, cwd=None, env=None):
    from conftest import cli_in_process

    return cli_in_process(*args, cwd=cwd, env=env)


def _one_line(r, needle):
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("[transformers]")]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_cli_evaluate_on_a_users_folder_and_without_one(tiny_clip_dir, photo_folder, tmp_path):
    out = tmp_path / "m.json"
    r = _cli("evaluate", str(tiny_clip_dir), "--eval-dataset", str(photo_folder / "classes"), "--templates",
             "openai_imagenet", "--latency-repeats", "1", "--latency-batch-size", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert m["eval_dataset"] == str(photo_folder / "classes") and m["zero_shot_classes"] == 6
    assert "zero-shot top-5 acc" in r.stdout and "mean per-class recall" in r.stdout
    r = _cli("evaluate", str(tiny_clip_dir), "--latency-repeats", "1", "--latency-batch-size", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert m["zero_shot_accuracy"] is None and m["eval_dataset"] is None and m["latency_ms"] > 0
    assert m["latency_inputs"] == "synthetic" and "accuracy not measured" in r.stdout


def test_cli_bad_evaluation_input_is_one_line(tiny_clip_dir, photo_folder, tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("a photo of a dog\n")
    _one_line(_cli("evaluate", str(tiny_clip_dir), "--eval-dataset", str(photo_folder / "classes"), "--templates",
                   str(bad), "--latency-repeats", "0"), "without {} for the class name")
    _one_line(_cli("evaluate", str(tiny_clip_dir), "--eval-dataset", str(photo_folder / "captions.csv"),
                   "--eval-task", "zero_shot", "--latency-repeats", "0"), "no datasets.ClassLabel label column")
    _one_line(_cli("evaluate", str(tiny_clip_dir), "--eval-dataset", str(photo_folder / "classes"),
                   "--eval-task", "retrieval", "--latency-repeats", "0"), "no captions for retrieval")
    _one_line(_cli("evaluate", str(tiny_clip_dir), "--eval-dataset", "someone/photos", "--latency-repeats", "0",
                   env={"HF_DATASETS_OFFLINE": "1"}), "someone/photos")


def test_a_hub_model_id_without_network_is_one_line(tmp_path):
    """No network (a closed port as the Hub), not offline mode: the id, that the Hub cannot be reached, and that a
    local folder works."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = cli_as_process("evaluate", "openai/clip-vit-base-patch32", env={
        "HF_ENDPOINT": f"http://127.0.0.1:{closed}", "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_CACHE": str(tmp_path / "cache")})
    _one_line(r, "openai/clip-vit-base-patch32 is not a local folder and the Hub at")
    assert "cannot be reached" in r.stderr and "pass a save_pretrained folder" in r.stderr


# --- evaluation data read right: every edge refused or counted, never scored silently --------------------------------
def _class_tree(root: Path, classes, per_class: int = 2, size: int = 16):
    from PIL import Image

    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (size, size), (20 * c % 256, 40 * i % 256, 90)).save(root / name / f"{i}.png")
    return root


def test_class_folders_named_like_splits_are_classes(tmp_path):
    """datasets' imagefolder reads train/test/val/... (and train_car) as splits, dropping the other classes; here
    every subfolder is a class, as CLIP_benchmark's torchvision ImageFolder reads it."""
    names = ["train", "test", "val", "dev", "eval", "train_car", "cat"]
    got = load_eval_set(str(_class_tree(tmp_path / "f", names)))
    assert sorted(got.class_names) == sorted(names) and len(got) == 2 * len(names)
    assert all(got.class_names[label] in names for label in got.labels)
    # a split layout (every subfolder a split name holding class subfolders) is read at --eval-split
    _class_tree(tmp_path / "s" / "train", ["cat", "dog", "cow"], per_class=3)
    _class_tree(tmp_path / "s" / "test", ["cat", "dog", "cow"], per_class=1)
    test = load_eval_set(str(tmp_path / "s"))
    assert test.split == "test" and len(test) == 3 and sorted(test.class_names) == ["cat", "cow", "dog"]
    assert len(load_eval_set(str(tmp_path / "s"), split="train")) == 9
    with pytest.raises(VlmcompressError, match="none is 'validation'"):
        load_eval_set(str(tmp_path / "s"), split="validation")


def test_images_of_any_mode_become_the_right_rgb(tmp_path):
    """A 16-bit PNG (which convert('RGB') clips to white), palette, LA and CMYK images read as the 8-bit image."""
    from PIL import Image

    from vlmcompress.evaluation.eval_sets import to_rgb

    grey = (np.arange(256, dtype=np.uint16).reshape(16, 16))
    Image.fromarray((grey * 257).astype(np.uint16)).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as deep:
        assert deep.mode.startswith("I") and (np.asarray(deep.convert("RGB")) == 255).mean() > 0.99  # PIL: white
        rgb = np.asarray(to_rgb(deep))
    assert rgb.shape == (16, 16, 3) and np.abs(rgb[..., 0].astype(int) - grey).max() <= 1
    base = Image.fromarray(np.stack([grey.astype(np.uint8)] * 3, -1), mode="RGB")
    for mode in ("P", "LA", "CMYK", "L"):
        image = base.convert(mode, palette=Image.Palette.ADAPTIVE) if mode == "P" else base.convert(mode)
        out = np.asarray(to_rgb(image)).astype(int)
        assert out.shape == (16, 16, 3) and np.abs(out - np.asarray(base).astype(int)).mean() < 8, mode
    # through a folder: the evaluation set hands the converted image to the processor
    (tmp_path / "set" / "deep").mkdir(parents=True)
    (tmp_path / "set" / "flat").mkdir()
    Image.fromarray((grey * 257).astype(np.uint16)).save(tmp_path / "set" / "deep" / "a.png")
    Image.new("L", (16, 16), 7).save(tmp_path / "set" / "flat" / "b.png")
    got = load_eval_set(str(tmp_path / "set"))
    first = np.asarray(got.images(slice(0, 1))[0])
    assert first.mean() < 200 and np.abs(first[..., 0].astype(int) - grey).max() <= 1


def test_bad_samples_are_refused_or_skipped_with_a_count_never_scored(tmp_path, capsys):
    root = _class_tree(tmp_path / "f", ["cat", "dog", "cow"], per_class=3)
    (root / "dog" / "1.png").write_bytes(b"not a png")  # corrupt
    (root / "owl").mkdir()  # an empty class
    with pytest.raises(VlmcompressError, match=r"class folder\(s\) owl hold no image.*--on-bad-sample skip"):
        load_eval_set(str(root))
    (root / "owl").rmdir()
    with pytest.raises(VlmcompressError, match=r"1 image\(s\) cannot be read, e\.g\. .*dog/1\.png.*--on-bad-sample skip"):
        load_eval_set(str(root))
    (root / "owl").mkdir()
    got = load_eval_set(str(root), on_bad_sample="skip")
    err = capsys.readouterr().err
    assert "1 class folder(s) hold no image" in err and "1 image(s) cannot be read left out" in err
    assert len(got) == 8 and "owl" in got.class_names  # the empty class stays a zero-shot candidate

    # captions: every caption kept (duplicates too, as CLIP_benchmark); an empty one is refused, or left out
    images = tmp_path / "img"
    _class_tree(images, ["x"], per_class=3)
    table = tmp_path / "c.csv"
    table.write_text("image,caption\nimg/x/0.png,a red dog\nimg/x/0.png,a red dog\nimg/x/1.png,\nimg/x/2.png,a cat\n"
                     "img/x/2.png,  \n")
    with pytest.raises(VlmcompressError, match=r"2 empty caption\(s\) in 'caption'"):
        load_eval_set(str(table))
    got = load_eval_set(str(table), on_bad_sample="skip")
    assert got.captions == [["a red dog", "a red dog"], ["a cat"]] and len(got) == 2
    assert "2 empty caption(s) in 'caption' left out" in capsys.readouterr().err
    assert all("None" not in c for caps in got.captions for c in caps)


def test_cli_on_bad_sample(tiny_clip_dir, tmp_path):
    root = _class_tree(tmp_path / "f", ["cat", "dog"], per_class=2, size=32)
    (root / "cat" / "0.png").write_bytes(b"\x89PNG broken")
    _one_line(_cli("evaluate", str(tiny_clip_dir), "--eval-dataset", str(root), "--latency-repeats", "0"),
              "cannot be read")
    r = _cli("evaluate", str(tiny_clip_dir), "--eval-dataset", str(root), "--latency-repeats", "0", "--on-bad-sample",
             "skip")
    assert r.returncode == 0 and "1 image(s) cannot be read left out" in r.stderr, r.stderr


@pytest.mark.slow
def test_a_hub_data_set_out_of_reach_is_one_line_without_retry_chatter(tmp_path):
    """huggingface_hub retries an unreachable Hub five times with a warning each; the user sees the one-line error
    (slow tier: the retries' back-off takes about 25 s)."""
    from conftest import cli_as_process

    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_DATASETS_OFFLINE": "0", "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(tmp_path / "hf")}
    r = cli_as_process("evaluate", "--eval-dataset", "someone/photos", "--latency-repeats", "0", env=env)
    _one_line(r, "cannot load data set 'someone/photos'")
    assert "Retry" not in r.stderr
