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


# --- quantized and distilled folders ---------------------------------------------------------------------------
# one fresh process for every folder below: argv[1] is a JSON list of checks
QUANTIZED_AND_DISTILLED = r"""
import json, sys
import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, pipeline
image = Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype("uint8"))
for check in json.loads(open(sys.argv[1]).read()):
    folder = check["folder"]
    if check["task"] == "zero-shot-image-classification":
        clf = pipeline("zero-shot-image-classification", model=folder, trust_remote_code=True)
        model = clf.model
        out = clf(image, candidate_labels=["1", "2", "3"])
        assert len(out) == 3 and abs(sum(o["score"] for o in out) - 1) < 1e-4, out
        linear = model.vision_model.encoder.layers[0].self_attn.q_proj
    else:
        model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
        linear = model.text_decoder.bert.encoder.layer[0].crossattention.self.query
        pv = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ids = model.generate(pixel_values=pv, max_new_tokens=4, do_sample=False)
        assert torch.equal(ids, torch.load(check["tokens"])), (folder, ids)
    assert type(model).__name__ == check["class"], (folder, type(model).__name__)
    # int8 weights load into bitsandbytes layers, never into float Linears
    assert type(linear).__name__ == check["linear"], (folder, type(linear).__name__)
assert not any(m.startswith("vlmcompress") for m in sys.modules), "vlmcompress was imported"
"""


def test_quantized_and_distilled_folders_load_through_their_task_classes(processor, blip_processor, tmp_path):
    """In one fresh process: an 8-bit CLIP (save_quantized) and a head-pruned CLIP student saved by
    DistillationTrainer.save_model in the zero-shot pipeline; an 8-bit BLIP captioner through
    AutoModelForImageTextToText + generate (the tokens it gave before saving)."""
    import pytest
    import torch

    pytest.importorskip("bitsandbytes")
    from transformers import TrainingArguments

    from vlmcompress.data.collate import ImageTextCollator
    from vlmcompress.distillation import DistillationTrainer
    from vlmcompress.embedded import digits
    from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized

    int8 = tmp_path / "clip-int8"
    assert save_quantized(quantize(tiny_clip(processor, hidden=64), QuantizationConfig(bits=8)), processor,
                          int8)["kind"] == "bitsandbytes"

    student = tiny_clip(processor, seed=1)
    prune_heads(student, {"vision": {0: [1]}, "text": {1: [0, 2]}})
    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=8, max_steps=1, report_to=[],
                             save_strategy="no", remove_unused_columns=False, use_cpu=True, disable_tqdm=True)
    trainer = DistillationTrainer(model=student, args=args, teacher=tiny_clip(processor),
                                  train_dataset=digits.load_digits_dataset("train", images_per_number=1),
                                  data_collator=ImageTextCollator(processor))
    trainer.train()
    distilled = tmp_path / "distilled"
    trainer.save_model(str(distilled))
    processor.save_pretrained(distilled)
    auto_map = json.loads((distilled / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForZeroShotImageClassification"] == auto_map["AutoModel"]

    captioner = quantize(tiny_blip("BlipForConditionalGeneration", hidden=64, text_init=0.3), QuantizationConfig(bits=8))
    blip_int8 = tmp_path / "blip-int8"
    assert save_quantized(captioner, blip_processor, blip_int8)["kind"] == "bitsandbytes"
    pv = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.save(captioner.generate(pixel_values=pv, max_new_tokens=4, do_sample=False), tmp_path / "tokens.pt")

    checks = [
        {"folder": str(int8), "task": "zero-shot-image-classification", "class": "CLIPModel", "linear": "Linear8bitLt"},
        {"folder": str(distilled), "task": "zero-shot-image-classification", "class": "VlmcompressCLIPModel",
         "linear": "Linear"},
        {"folder": str(blip_int8), "task": "image-text-to-text", "class": "BlipForConditionalGeneration",
         "linear": "Linear8bitLt", "tokens": str(tmp_path / "tokens.pt")},
    ]
    (tmp_path / "checks.json").write_text(json.dumps(checks))
    run_fresh_python(QUANTIZED_AND_DISTILLED, tmp_path / "checks.json", cwd=tmp_path)


def test_a_pruned_model_saved_by_plain_save_pretrained_carries_its_modeling_code(processor, tmp_path):
    """Pruning gives the model vlmcompress's class at once, so any save_pretrained (Trainer.save_model included) writes
    the modeling file and auto_map, not only save_compressed."""
    import torch
    from transformers import AutoModel

    model = tiny_clip(processor)
    prune_heads(model, {"vision": {0: [1]}})
    assert type(model).__name__ == "VlmcompressCLIPModel"
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_vlmcompress.py").is_file()
    reloaded = AutoModel.from_pretrained(tmp_path, trust_remote_code=True).eval()
    assert type(reloaded).__name__ == "VlmcompressCLIPModel"
    pv = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(reloaded.get_image_features(pixel_values=pv).pooler_output,
                                   model.get_image_features(pixel_values=pv).pooler_output, rtol=0, atol=1e-6)
