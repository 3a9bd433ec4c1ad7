"""DistillationTrainer under accelerate's FSDP plugin (FSDP2): 2 real processes on CPU (gloo).

accelerate 1.16 never turns FSDP on for CPU (the config falls back to DDP, and the trainer says so); the launched
script then switches accelerate onto its FSDP2 path (test only) to check the rest: the student is sharded per encoder
layer, the teacher is not, both ranks train in step (the same weights as DDP), and the saved student is whole and
reloads with the stock class and with vlmcompress.loading.load_model.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "recipes" / "accelerate_configs" / "fsdp_cpu_2proc.yaml"


def test_make_shardable_keeps_the_forward_and_restores_stock_shapes(processor):
    from transformers import CLIPModel

    from conftest import tiny_clip
    from vlmcompress.distillation.fsdp import make_shardable, restore_scalars

    model = tiny_clip(processor)
    batch = processor(text=["a photo of 12", "a photo of 7"], images=[_image(), _image(1)], padding=True,
                      return_tensors="pt")
    before = model(**batch).logits_per_image
    with pytest.raises(NotImplementedError):
        model.get_input_embeddings()
    assert make_shardable(model) == ["logit_scale"]
    assert model.logit_scale.shape == (1,) and model.logit_scale.requires_grad
    assert model.get_input_embeddings() is model.text_model.embeddings.token_embedding
    torch.testing.assert_close(model(**batch).logits_per_image, before)
    state = restore_scalars(model.state_dict(), ["logit_scale"])
    assert state["logit_scale"].shape == ()
    CLIPModel(model.config).load_state_dict(state, strict=True)


def _image(value=0):
    from PIL import Image

    return Image.new("L", (56, 56), color=value * 200)


@pytest.mark.distributed
def test_two_process_fsdp_distillation(tmp_path, processor):
    from transformers import CLIPModel

    from vlmcompress.embedded.clip_teacher import teacher_config
    from vlmcompress.loading import load_model

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG),
           str(Path(__file__).with_name("fsdp_distill_script.py")), str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", VLMCOMPRESS_NO_PROGRESS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]

    # accelerate as it is on CPU: the FSDP config trains with DDP, and rank 0 is told so once
    assert all(rk["plain"]["distributed"] == "MULTI_CPU" and not rk["plain"]["fsdp"] for rk in ranks)
    assert all(rk["plain"]["wrapped"] == "DistributedDataParallel" for rk in ranks)
    assert len(ranks[0]["plain"]["warnings"]) == 1 and "never on CPU" in ranks[0]["plain"]["warnings"][0]
    assert ranks[1]["plain"]["warnings"] == []

    fsdp = [rk["fsdp"] for rk in ranks]
    assert all(f["distributed"] == "FSDP" and f["fsdp"] and f["wrapped"] == "FSDPCLIPModel" for f in fsdp)
    assert all(f["warnings"] == [] for f in fsdp)
    # the student is sharded: 2+2 encoder layers, the token embedding and the root; each rank holds about half
    assert all(f["sharded_layers"] == 6 for f in fsdp)
    assert fsdp[0]["local_numel"] + fsdp[1]["local_numel"] == fsdp[0]["full_numel"] >= fsdp[0]["local_numel"] > 0
    assert all(f["full_numel"] < 1.1 * f["local_numel"] * 2 for f in fsdp)
    assert all(f["logit_scale_shape"] == [1] for f in fsdp)  # shardable while training
    # the teacher is not wrapped: a whole frozen bf16 copy in eval mode on each rank
    assert all(f["teacher"] == {"fsdp": False, "training": False, "dtype": "bfloat16", "requires_grad": False} for f in fsdp)
    # both ranks train in step: the same (falling) losses, the same width projections, the same weights as DDP
    assert fsdp[0]["losses"] == fsdp[1]["losses"] and fsdp[0]["losses"][-1] < fsdp[0]["losses"][0]
    assert fsdp[0]["projections"] == ["embed_image", "embed_text", "hidden_text", "hidden_vision"]
    assert fsdp[0]["projection_sum"] == fsdp[1]["projection_sum"]
    assert fsdp[0]["losses"] == pytest.approx(ranks[0]["plain"]["losses"], rel=1e-5)
    whole = ranks[0]["whole"]
    assert "whole" not in ranks[1]  # trained_student() gives the model on the main process only
    assert whole["class"] == "CLIPModel" and whole["keys"] == whole["reference_keys"]
    assert whole["max_diff_vs_ddp"] < 5e-3
    assert whole["logit_scale"] != pytest.approx(whole["logit_scale_init"], abs=1e-4)  # trained, not frozen

    # the saved folder is the whole student with stock shapes: from_pretrained and load_model give it back
    saved = tmp_path / "saved"
    state = torch.load(tmp_path / "whole.pt")
    for model in (CLIPModel.from_pretrained(saved), load_model(str(saved))):
        assert type(model).__name__ == "CLIPModel" and model.logit_scale.shape == ()
        loaded = model.state_dict()
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    torch.manual_seed(0)
    init = CLIPModel(teacher_config(processor.tokenizer, layers=2, hidden=32, heads=4, projection=16)).state_dict()
    changed = [k for k in init if not torch.equal(init[k], state[k])]
    assert len(changed) >= 0.9 * len(init) and "logit_scale" in changed
