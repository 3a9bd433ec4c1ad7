"""BLIP through the commands: prune writes a checkpoint, report and card whose snippet runs as written."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import tiny_blip


@pytest.fixture(scope="module")
def blip_dirs(tmp_path_factory, blip_processor):
    root = tmp_path_factory.mktemp("blip")
    out = {}
    for cls_name in ("BlipForConditionalGeneration", "BlipForImageTextRetrieval"):
        path = root / cls_name
        tiny_blip(cls_name).save_pretrained(path)
        blip_processor.save_pretrained(path)
        out[cls_name] = path
    return out


def _run_snippet(card: str, folder, tmp_path) -> str:
    """The card's python snippet, pasted as written and run in a fresh process from the checkpoint folder (what the
    card says to do before the folder is pushed)."""
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    if "print(" not in code:
        code += "\nprint(scores.shape if 'scores' in dir() else probs.shape)\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=folder, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.parametrize("cls_name", ["BlipForConditionalGeneration", "BlipForImageTextRetrieval"])
def test_prune_blip_cli_report_and_card(cls_name, blip_dirs, tmp_path):
    from vlmcompress.cli import main

    out = tmp_path / "pruned"
    assert main(["prune", str(blip_dirs[cls_name]), "-o", str(out), "--head-ratio", "0.25", "--mlp-ratio", "0.5",
                 "--dataset", "vlmcompress/digits-train", "--calibration-samples", "16", "--images-per-number", "1", "--latency-batch-size", "4",
                 "--latency-rounds", "1", "--eval-dataset", "vlmcompress/digits-test"]) == 0
    report = json.loads((out / "compression_report.json").read_text())
    assert report["model_family"] == "blip" and report["loading"]["class"] == f"Vlmcompress{cls_name}"
    decoder = "text_decoder" if "Generation" in cls_name else "text"
    heads = report["steps"][0]["removed_heads"]
    # 25% of 24 heads: vision, the text tower's self-attention and its cross-attention, 2 layers x 4 heads each
    assert set(heads) <= {"vision", decoder, f"{decoder}_cross"}
    assert sum(len(h) for layers in heads.values() for h in layers.values()) == 6
    assert set(report["steps"][1]["removed_neurons"]) == {"vision", decoder}
    card = (out / "README.md").read_text()
    if "Generation" in cls_name:
        assert report["after"]["caption_accuracy"] is not None and report["after"]["zero_shot_accuracy"] is None
        assert "pipeline_tag: image-to-text" in card and "caption accuracy (held-out)" in card
        caption = _run_snippet(card, out, tmp_path).strip()
        assert caption and caption.split()[0] in json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    else:
        assert report["after"]["zero_shot_accuracy"] is not None and report["after"]["caption_accuracy"] is None
        assert "use_itm_head=False" in card
        assert _run_snippet(card, out, tmp_path).strip() == "torch.Size([1, 2])"
