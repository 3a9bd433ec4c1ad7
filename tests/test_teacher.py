"""The shipped teacher: loads with plain transformers classes and is really trained."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from vlmcompress.report import read_report, weights_size_bytes
from vlmcompress.embedded.clip_teacher import TEACHER_PATH, pixel_values_from_uint8, teacher_path

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_teacher_loads_with_stock_classes_and_is_accurate():
    from transformers import CLIPModel, CLIPProcessor

    from vlmcompress.evaluation import evaluate_model

    path = teacher_path()
    model = CLIPModel.from_pretrained(path).eval()
    processor = CLIPProcessor.from_pretrained(path)
    cfg = model.config
    for tower in (cfg.vision_config, cfg.text_config):
        assert tower.num_hidden_layers >= 4 and tower.num_attention_heads >= 4
        assert tower.intermediate_size == 4 * tower.hidden_size
    assert weights_size_bytes(path) <= 15 * 2**20
    # a slice of the test split: 10 images per number (900 seen, 100 held-out)
    m = evaluate_model(model, processor, images_per_number=10, latency_repeats=0, measure_size=False)
    # targets are 85% / 70% on the full split; allow ~3 standard errors for the slice
    assert m["zero_shot_accuracy"] >= 0.82, m
    assert m["zero_shot_accuracy_heldout"] >= 0.58, m


def test_shipped_teacher_report_is_valid_and_meets_targets():
    report = read_report(TEACHER_PATH)
    after = report["after"]
    assert after["eval_images"] == 10_000  # >=100 test images per number
    assert after["zero_shot_accuracy"] >= 0.85 and after["zero_shot_accuracy_heldout"] >= 0.70
    assert report["steps"][0]["method"] == "train_from_scratch"


def test_fast_pixel_path_equals_processor(processor):
    from PIL import Image

    from vlmcompress.embedded import digits

    images = digits.sample_images(np.array([47, 8, 99]), np.random.default_rng(0))
    slow = processor.image_processor([Image.fromarray(i, mode="L") for i in images], return_tensors="pt")["pixel_values"]
    fast = pixel_values_from_uint8(images, processor.image_processor)
    assert slow.shape == fast.shape == (3, 3, 56, 56)
    assert torch.allclose(slow, fast, atol=1e-6)


def test_tokenizer_splits_digits_so_heldout_numbers_bring_no_unseen_token(processor):
    from vlmcompress.embedded import digits

    tok = processor.tokenizer
    for n in digits.HELDOUT_NUMBERS:
        ids = tok(f"a photo of the number {n:02d}")["input_ids"]
        pieces = tok.convert_ids_to_tokens(ids)
        assert f"{n // 10}</w>" in pieces and f"{n % 10}</w>" in pieces
        assert tok.unk_token_id not in ids[1:-1]


def test_train_teacher_recipe_writes_a_loadable_deterministic_checkpoint(tmp_path):
    from safetensors.torch import load_file
    from transformers import CLIPModel

    from vlmcompress.embedded.training import TeacherArguments, train_clip_teacher

    kw = dict(max_steps=3, batch_size=16, layers=1, hidden_size=32, heads=2, eval_images_per_number=1, seed=3)
    m1 = train_clip_teacher(TeacherArguments(output_dir=str(tmp_path / "a"), **kw))
    # the recipe is the same function's command line: the same arguments give the same weights
    argv = [a for k, v in kw.items() for a in (f"--{k}", str(v))]
    subprocess.run([sys.executable, str(ROOT / "recipes" / "train_teacher.py"), "--output_dir", str(tmp_path / "b"),
                    *argv], check=True, capture_output=True)
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    report = read_report(tmp_path / "a")
    assert report["after"]["params"] == m1["params"]
    assert len(report["steps"][0]["training"]["loss_log"]) >= 2
    model = CLIPModel.from_pretrained(tmp_path / "a")
    assert model.config.vision_config.num_hidden_layers == 1
    assert not list(tmp_path.glob(".a.tmp-*"))


def test_shipped_blip_captioner_loads_with_stock_classes_and_captions_numbers():
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from vlmcompress.embedded import digits
    from vlmcompress.embedded.blip_captioner import blip_teacher_path

    model = BlipForConditionalGeneration.from_pretrained(blip_teacher_path()).eval()
    processor = BlipProcessor.from_pretrained(blip_teacher_path())
    report = read_report(blip_teacher_path())
    assert report["model_family"] == "blip" and report["after"]["caption_accuracy"] > 0.85
    test = digits.load_digits_dataset("test", images_per_number=1, numbers=digits.SEEN_NUMBERS[:20])
    with torch.no_grad():
        ids = model.generate(**processor(images=list(test["image"]), return_tensors="pt"), max_new_tokens=12)
    named = [digits.number_in_caption(c) for c in processor.batch_decode(ids, skip_special_tokens=True)]
    assert sum(n == lab for n, lab in zip(named, test["label"])) >= 14  # the report says ~91% on seen numbers


def test_train_blip_teacher_recipe_writes_a_loadable_captioner(tmp_path):
    from transformers import BlipForConditionalGeneration

    from vlmcompress.embedded.training import BlipTeacherArguments, train_blip_teacher

    metrics = train_blip_teacher(BlipTeacherArguments(output_dir=str(tmp_path / "c"), max_steps=3, batch_size=16,
                                                      layers=1, text_layers=1, hidden_size=32, heads=2,
                                                      eval_images_per_number=1))
    report = read_report(tmp_path / "c")
    assert report["model_family"] == "blip" and report["after"]["params"] == metrics["params"]
    assert report["steps"][0]["max_steps"] == 3 and len(report["steps"][0]["training"]["loss_log"]) >= 2
    model = BlipForConditionalGeneration.from_pretrained(tmp_path / "c")
    assert model.config.text_config.num_hidden_layers == 1
