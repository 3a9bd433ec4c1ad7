"""PruningCallback under a real 2-process `accelerate launch` on CPU (gloo DDP)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlmcompress.loading import load_checkpoint


@pytest.mark.distributed
def test_pruning_callback_with_two_process_accelerate_launch(tmp_path):
    script = Path(__file__).with_name("ddp_pruning_script.py")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", VLMCOMPRESS_NO_PROGRESS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert all(rk["world_size"] == rk["dist_world_size"] == rk["trainer_world_size"] == 2 for rk in ranks)
    assert ranks[0]["pid"] != ranks[1]["pid"]
    # Trainer really ran DDP (on CPU it needs use_cpu=True; without it each rank trains alone)
    assert all(rk["wrapped"] == "DistributedDataParallel" and rk["accelerator_processes"] == 2 for rk in ranks)
    # gradients are all-reduced before on_pre_optimizer_step, so both ranks choose the same heads
    assert ranks[0]["steps"] == ranks[1]["steps"] and ranks[0]["steps"][0]["method"] == "head_pruning"
    removed = ranks[0]["steps"][0]["removed_heads"]
    assert all(sum(len(h) for h in removed[t].values()) == 4 for t in ("vision", "text"))
    model, _, _ = load_checkpoint(str(tmp_path / "final"))
    assert sum(model.config.vision_config.layer_num_heads) == 4
