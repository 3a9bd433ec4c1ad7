"""Head-pruned folders load through the task auto classes and pipelines their card's ``pipeline_tag`` promises, in a
fresh process with ``trust_remote_code=True`` and without vlmcompress (the Hub widget's path)."""

import json

from conftest import run_fresh_python, tiny_blip, tiny_clip

from vlmcompress.modeling import save_compressed
from vlmcompress.pruning.structural import prune_heads

ZERO_SHOT = r"""
import sys
import numpy as np
from PIL import Image
from transformers import pipeline
clf = pipeline("zero-shot-image-classification", model=sys.argv[1], trust_remote_code=True)
assert type(clf.model).__name__ == "VlmcompressCLIPModel", type(clf.model).__name__
image = Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype("uint8"))
out = clf(image, candidate_labels=["1", "2", "3"])
assert len(out) == 3 and abs(sum(o["score"] for o in out) - 1) < 1e-4, out
assert not any(m.startswith("vlmcompress") for m in sys.modules), "vlmcompress was imported"
"""

CAPTIONER = r"""
import sys, torch
from transformers import AutoModelForImageTextToText
model = AutoModelForImageTextToText.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__name__ == "VlmcompressBlipForConditionalGeneration", type(model).__name__
vc = model.config.vision_config
pv = torch.randn(2, 3, vc.image_size, vc.image_size, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    ids = model.generate(pixel_values=pv, max_new_tokens=4)
assert ids.shape[0] == 2, ids.shape
assert not any(m.startswith("vlmcompress") for m in sys.modules), "vlmcompress was imported"
"""


def test_pruned_clip_runs_in_the_zero_shot_pipeline(processor, tmp_path):
    model = tiny_clip(processor)
    prune_heads(model, {"vision": {0: [1]}, "text": {1: [0, 2]}})
    folder = tmp_path / "pruned"
    assert save_compressed(model, processor, folder)["kind"] == "remote_code"
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForZeroShotImageClassification"] == auto_map["AutoModel"]
    run_fresh_python(ZERO_SHOT, folder, cwd=tmp_path)


def test_pruned_blip_captioner_loads_with_image_text_to_text(blip_processor, tmp_path):
    model = tiny_blip("BlipForConditionalGeneration")
    prune_heads(model, {"text_decoder_cross": {0: [1]}, "text_decoder": {1: [0]}, "vision": {1: [0]}})
    folder = tmp_path / "pruned"
    assert save_compressed(model, blip_processor, folder)["kind"] == "remote_code"
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForImageTextToText"] == auto_map["AutoModel"]
    run_fresh_python(CAPTIONER, folder, cwd=tmp_path)
