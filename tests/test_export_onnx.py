"""ONNX export (issue 15): separate image/text graphs or BLIP vision encoder + decoder, parity with PyTorch, int8,
the exported folder measured by the same harness, a card that runs with onnxruntime, bad input in one line."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import tiny_blip, tiny_clip
from test_cli import _assert_one_line_error, run_cli

pytest.importorskip("onnxruntime")


def _siglip(seed=0):
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(seed)
    config = SiglipConfig(text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, max_position_embeddings=16),
                          vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, image_size=32, patch_size=8))
    return SiglipModel(config).eval()


def _siglip_processor():
    from transformers import SiglipImageProcessor

    return SiglipImageProcessor(size={"height": 32, "width": 32})


def _export(model, processor, out, **kw):
    from vlmcompress import export_onnx

    return export_onnx(model, out, processor=processor, evaluate=False, **kw)


@pytest.mark.parametrize("kind", ["clip-teacher", "clip-pruned-nonuniform", "clip-distilled-student", "blip-retrieval"])
def test_two_tower_graphs_match_pytorch(kind, processor, blip_processor, tmp_path):
    from vlmcompress import load_model
    from vlmcompress.modeling.onnx_runtime import OnnxModel
    from vlmcompress.pruning.structural import prune_heads, prune_layers, prune_mlp

    proc = blip_processor if kind.startswith("blip") else processor
    if kind == "clip-teacher":
        model = load_model()  # the embedded, trained teacher
    elif kind == "clip-pruned-nonuniform":
        model = tiny_clip(processor)
        prune_heads(model, {"vision": {0: [1]}, "text": {1: [0, 2]}})
        prune_mlp(model, {"vision": {1: list(range(20))}})
    elif kind == "clip-distilled-student":
        model = tiny_clip(processor, layers=3)
        prune_layers(model, {"vision": [1], "text": [0]})
    else:
        model = tiny_blip("BlipForImageTextRetrieval")
        prune_heads(model, {"vision": {0: [1]}, "text": {1: [0]}, "text_cross": {0: [2]}})
    out = tmp_path / "onnx"
    report = _export(model, proc, out)
    step = report["steps"][-1]
    assert step["method"] == "onnx_export" and step["opset"] == 17 and set(step["graphs"]) == {"image", "text"}
    for role in ("image", "text"):
        assert step["parity"][role]["max_abs_diff"] <= 1e-4 and step["parity"][role]["samples"] == 5
    assert {"image_encoder.onnx", "text_encoder.onnx", "onnx_config.json", "compression_report.json",
            "README.md"} <= {p.name for p in out.iterdir()}
    # the graphs run apart, with batch sizes and caption lengths they were not traced with
    onnx_model = OnnxModel(out)
    from PIL import Image

    pixels = proc.image_processor(images=[Image.new("RGB", (64, 64), (i * 30, 0, 0)) for i in range(7)],
                                  return_tensors="pt")["pixel_values"]
    from vlmcompress.adapters import get_adapter

    adapter = get_adapter(model)
    with torch.no_grad():
        ref = adapter.image_embeddings(pixels)
    assert (onnx_model.get_image_features(pixel_values=pixels) - ref).abs().max() <= 1e-4
    enc = proc.tokenizer(["a photo of the number 3 and a much longer caption than before", "x"], padding=True,
                         return_tensors="pt", truncation=True)
    with torch.no_grad():
        ref = adapter.text_embeddings(enc["input_ids"], enc["attention_mask"])
    got = onnx_model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    assert (got - ref).abs().max() <= 1e-4


def test_siglip_graphs_match_pytorch(tmp_path):
    model = _siglip()
    from vlmcompress.export.onnx import check_parity, export_graphs

    class Processor:  # SigLIP's image processor and a tokenizer-like callable (no sentencepiece model offline)
        image_processor = _siglip_processor()

        def tokenizer(self, texts, **kw):
            ids = torch.tensor([[(7 * i + j) % 97 + 1 for j in range(16)] for i in range(len(texts))])
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

        def save_pretrained(self, folder):
            self.image_processor.save_pretrained(folder)

    proc = Processor()
    step = export_graphs(model, proc, tmp_path)
    assert all(step["parity"][r]["max_abs_diff"] <= 1e-4 for r in ("image", "text"))


def test_blip_captioner_greedy_captions_in_onnx_equal_pytorch(blip_processor, tmp_path):
    from vlmcompress.embedded.blip_captioner import blip_teacher_path
    from vlmcompress.modeling.onnx_runtime import OnnxModel
    from vlmcompress import load_checkpoint
    from vlmcompress.pruning.structural import prune_heads

    model, proc, _ = load_checkpoint(blip_teacher_path())  # the trained captioner: captions are not noise
    prune_heads(model, {"text_decoder_cross": {0: [1]}, "vision": {1: [0]}})
    out = tmp_path / "onnx"
    report = _export(model, proc, out)
    step = report["steps"][-1]
    assert set(step["graphs"]) == {"vision", "decoder"} and step["kv_cache"] is False
    assert step["parity"]["decoder"]["max_abs_diff"] <= 1e-4
    from vlmcompress.embedded import digits

    ds = digits.load_digits_dataset("test", images_per_number=1)
    pixels = proc.image_processor(images=ds["image"][:12], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        want = model.generate(pixel_values=pixels, max_new_tokens=10, do_sample=False, num_beams=1)
    got = OnnxModel(out).generate(pixel_values=pixels, max_new_tokens=10)
    decode = lambda ids: proc.tokenizer.batch_decode(ids, skip_special_tokens=True)  # noqa: E731
    assert decode(got) == decode(want) and any(decode(want))
    # the card's onnxruntime loop runs as pasted from the folder and captions like generate
    card = (out / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=out, env=env, timeout=300)
    assert run.returncode == 0 and "greedy" in code, run.stderr[-2000:]


def test_int8_graphs_are_smaller_and_close(processor, tmp_path):
    from vlmcompress import load_model

    model = load_model()
    fp32 = _export(model, processor, tmp_path / "fp32")["steps"][-1]
    int8 = _export(model, processor, tmp_path / "int8", int8=True)["steps"][-1]
    assert int8["int8"] is True
    _export(model, processor, tmp_path / "int8", int8=True, overwrite=True)  # an earlier export is ours to replace
    for role in ("image", "text"):
        assert int8["graphs"][role]["bytes"] < 0.5 * fp32["graphs"][role]["bytes"]
        assert int8["parity"][role]["min_cosine"] >= 0.99


def test_cli_export_evaluate_and_card_snippet(tiny_clip_dir, tmp_path):
    out = tmp_path / "onnx"
    r = run_cli("export", str(tiny_clip_dir), "--format", "onnx", "--int8", "-o", str(out), "--images-per-number", "1",
                "--latency-batch-size", "4", "--latency-rounds", "2", "--eval-dataset", "vlmcompress/digits-test")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "compression_report.json").read_text())
    assert report["loading"]["kind"] == "onnx" and report["after"]["runtime"] == "onnxruntime"
    assert report["after"]["zero_shot_accuracy"] is not None and report["after"]["latency_vs_base"]["rounds"] == 2
    assert report["after"]["size_bytes"] < report["before"]["size_bytes"]  # int8 graphs against fp32 safetensors
    # the exported folder is measured by the same harness through ONNX Runtime
    r = run_cli("evaluate", str(out), "--images-per-number", "1", "--latency-repeats", "1")
    assert r.returncode == 0 and "zero-shot acc" in r.stdout, r.stderr
    # the card shows how to run it with onnxruntime, and that snippet runs as pasted from the folder
    card = (out / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert "onnxruntime" in code
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=out, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_export_bad_input_is_one_line(tiny_clip_dir, tmp_path):
    out = tmp_path / "never"
    q8 = tmp_path / "q8"
    assert run_cli("quantize", str(tiny_clip_dir), "--bits", "8", "-o", str(q8), "--no-eval").returncode == 0
    _assert_one_line_error(run_cli("export", str(q8), "-o", str(out), "--no-eval"), "bitsandbytes-quantized model cannot be exported")
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("x")
    _assert_one_line_error(run_cli("export", str(tiny_clip_dir), "-o", str(user), "--no-eval"), "did not write")
    assert (user / "notes.txt").read_text() == "x"
    good = tmp_path / "good"
    assert run_cli("export", str(tiny_clip_dir), "-o", str(good), "--no-eval").returncode == 0
    data = (good / "image_encoder.onnx").read_bytes()
    (good / "image_encoder.onnx").write_bytes(data[: len(data) // 3])
    _assert_one_line_error(run_cli("evaluate", str(good)), "is not a loadable ONNX graph")
    _assert_one_line_error(run_cli("push", str(good), "--repo-id", "me/x"), "image_encoder.onnx is damaged or truncated")
    assert not out.exists()
