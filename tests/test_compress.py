"""``vlmcompress compress RECIPE``: validation before anything runs, stage folders chained into one card, resume
(skip, changed options, --from-stage, a run killed mid-distillation resumes from its Trainer checkpoint), the
output-folder rule, push without a token, and the budget planner (``target``, ``vlmcompress plan``)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlmcompress.errors import VlmcompressError
from vlmcompress.workflows.recipe import load_recipe, parse_recipe_text, recipe_from_dict

FAST_EVAL = {"latency_rounds": 1, "latency_batch_size": 2}


def _write(path: Path, recipe: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


from conftest import cli_as_process  # noqa: E402


def _cli(*args, cwd=None, env=None):
    from conftest import cli_in_process

    return cli_in_process(*args, cwd=cwd, env=env)


def _one_line(r, needle):
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("[transformers]")]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and needle in lines[0], r.stderr


@pytest.mark.parametrize("text, needle", [
    ("stages:\n  - prune: {head_ratio: 0.3\noutput_dir: x\n", "is not valid YAML at line 3, column 1"),
    ("stages: [{shrink: {}}]\noutput_dir: x\n", "stage 1: unknown stage 'shrink'"),
    ("stages: [{prune: {head_ratio: 0.3, heads: 2}}]\noutput_dir: x\n", "stage 1 (prune): unknown key 'heads'"),
    ("stages: [{quantize: {bits: 4}}, {prune: {head_ratio: 0.3}}]\noutput_dir: x\n",
     "stage 2 (prune): cannot follow quantize"),
    ("stages: [{export: {}}, {quantize: {bits: 8}}]\noutput_dir: x\n", "export is the last stage"),
    ("stages: [{quantize: {bits: 3}}]\noutput_dir: x\n", "stage 1 (quantize): --bits must be 8"),
    ("stages: [{distill: {max_steps: 5, temprature: 2}}]\noutput_dir: x\n", "stage 1 (distill): unknown key 'temprature'"),
    ("stages: [{distill: {cache_teacher: maybe}}]\noutput_dir: x\n", "stage 1 (distill).cache_teacher: expected true"),
    ("stages: [{prune: {head_ratio: 0.3, target: {max_size_mib: 1}}}]\noutput_dir: x\n", "either a target or ratios"),
    ("target: {max_size_mib: 1}\nstages: [{quantize: {bits: 8}}]\noutput_dir: x\n", "add a prune stage"),
    ("stages: [{prune: {head_ratio: 0.3}}]\n", "output_dir: missing"),
    ("stages: [{prune: {head_ratio: 0.3}}]\noutput_dir: x\nsteps: 3\n", "top level: unknown key 'steps'"),
    # values of the wrong type or range, which used to fail mid-stage or train something else
    ("stages: [{distill: {max_steps: -5}}]\noutput_dir: x\n", "stage 1 (distill).max_steps: expected a positive number"),
    ("stages: [{distill: {max_steps: 1e3}}]\noutput_dir: x\n",
     "stage 1 (distill).max_steps: expected a whole number, got '1e3' (YAML read it as text"),
    ("stages: [{distill: {learning_rate: fast}}]\noutput_dir: x\n", "stage 1 (distill).learning_rate: expected a number, got 'fast'"),
    ("stages: [{prune: {head_ratio: '0.5'}}]\noutput_dir: x\n", "stage 1 (prune).head_ratio: expected a number, got '0.5'"),
    ("stages: [{quantize: {bits: '8'}}]\noutput_dir: x\n", "stage 1 (quantize).bits: expected a whole number, got '8'"),
])
def test_a_bad_recipe_is_one_line_before_anything_runs(text, needle):
    with pytest.raises(VlmcompressError, match=None) as err:
        recipe_from_dict(parse_recipe_text(text, "r.yaml"))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_recipe_through_the_command_writes_nothing(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text(f"stages: [{{prune: {{head_ratio: 0.3}}}}, {{quantize: {{bits: 4, quant_typ: nf4}}}}]\n"
                   f"output_dir: {tmp_path / 'out'}\n")
    _one_line(_cli("compress", bad), "stage 2 (quantize): unknown key 'quant_typ'")
    assert not (tmp_path / "out").exists()


def test_an_output_dir_holding_a_users_files_is_refused_and_untouched(tmp_path, tiny_clip_dir):
    from vlmcompress.workflows.compress import Pipeline

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    recipe = recipe_from_dict({"model": str(tiny_clip_dir), "stages": [{"prune": {"head_ratio": 0.25}}],
                               "output_dir": str(out)})
    with pytest.raises(VlmcompressError, match="holds files a vlmcompress pipeline did not write"):
        Pipeline(recipe)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"


def test_stages_chain_resume_and_rerun_from_a_stage(tmp_path, tiny_clip_dir):
    """prune -> quantize on a tiny CLIP: each stage a folder naming the previous one; a rerun does nothing; a changed
    quantize option reruns only that stage; --from-stage 1 reruns both."""
    out = tmp_path / "out"
    recipe = {"model": str(tiny_clip_dir), "data": {"eval": "vlmcompress/digits-test", "images_per_number": 1},
              "eval": FAST_EVAL, "output_dir": str(out),
              "stages": [{"prune": {"head_ratio": 0.25, "importance": "magnitude"}}, {"quantize": {"bits": 8}}]}
    path = _write(tmp_path / "r.yaml", recipe)
    r = _cli("compress", path)
    assert r.returncode == 0, r.stderr
    final = out / "02-quantize"
    report = json.loads((final / "compression_report.json").read_text())
    assert report["base_model"] == str(out / "01-prune") and report["recipe"]["stages"][1] == {"quantize": {"bits": 8}}
    assert (final / "recipe.yaml").read_text() == path.read_text()
    card = (final / "README.md").read_text()
    assert "## Recipe" in card and "bits: 8" in card.split("## Recipe")[1]
    assert "01-prune" in card  # the chain: base -> 01-prune -> this model
    assert report["after"]["zero_shot_accuracy"] is not None
    first = json.loads((out / "01-prune" / "stage.json").read_text())

    r = _cli("compress", path)
    assert r.returncode == 0 and "nothing to do" in r.stdout, r.stdout + r.stderr
    assert r.stdout.count("skipped") == 2

    recipe["stages"][1] = {"quantize": {"bits": 4, "quant_type": "fp4"}}
    _write(path, recipe)
    r = _cli("compress", path)
    assert r.returncode == 0, r.stderr
    assert "stage 01-prune: complete" in r.stdout and "stage 02-quantize: running" in r.stdout
    assert json.loads((out / "01-prune" / "stage.json").read_text()) == first
    assert json.loads((final / "compression_report.json").read_text())["steps"][0]["bits"] == 4

    r = _cli("compress", path, "--from-stage", "1")
    assert r.returncode == 0 and r.stdout.count("running") == 2, r.stdout


def _prune_then_distill(tmp_path, model, out, train_images_per_number, **distill) -> Path:
    """A recipe file: magnitude heads -25%, then a distillation stage without the teacher cache."""
    return _write(tmp_path / "r.yaml", {
        "model": str(model), "data": {"train_images_per_number": train_images_per_number}, "eval": {"skip": True},
        "output_dir": str(out), "stages": [{"prune": {"head_ratio": 0.25, "importance": "magnitude"}},
                                           {"distill": {**distill, "cache_teacher": False}}]})


def test_a_distillation_stage_that_died_after_a_checkpoint_resumes_from_it(tmp_path, tiny_clip_dir, monkeypatch):
    """The fast tier's stand-in for the SIGKILL test below, in this process: Ctrl-C at step 3 of the distillation stage,
    after the Trainer saved checkpoint-2; the message names what was kept (not "nothing was written"), the stage folder
    does not look complete, and the rerun skips the prune stage, resumes from checkpoint-2, trains the remaining steps
    only and leaves no checkpoint in the final folder."""
    from transformers import Trainer

    out = tmp_path / "out"
    path = _prune_then_distill(tmp_path, tiny_clip_dir, out, 1, max_steps=4, save_steps=2,
                               per_device_train_batch_size=8, logging_steps=1)
    step = Trainer.training_step
    trained = []

    def dies_at_step_3(self, *args, **kwargs):
        if self.state.global_step == 2 and (Path(self.args.output_dir) / "checkpoint-2").is_dir():
            raise KeyboardInterrupt  # Ctrl-C here
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", dies_at_step_3)
    r = _cli("compress", path)
    assert r.returncode == 130, r.stdout + r.stderr
    assert "nothing was written" not in r.stderr
    assert f"interrupted; kept in {out}: 01-prune (complete), 02-distill/checkpoint-2 (a Trainer checkpoint); rerun " \
        "the same command to resume" in r.stderr, r.stderr
    stage = out / "02-distill"
    assert (out / "01-prune" / "stage.json").is_file() and (stage / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (stage / "stage.json").exists() and not (stage / "compression_report.json").exists()

    def counts(self, *args, **kwargs):
        trained.append(self.state.global_step)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", counts)
    import vlmcompress.cards as cards

    render, cards_written = cards.write_card, []  # the last stage's card is rendered once, with the recipe

    def write_card(folder, *args, **kwargs):
        cards_written.append(Path(folder).name)
        return render(folder, *args, **kwargs)

    monkeypatch.setattr(cards, "write_card", write_card)
    r = _cli("compress", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stage 01-prune: complete" in r.stdout and "resuming from checkpoint-2" in r.stdout, r.stdout
    assert trained == [2, 3]  # steps 3 and 4 only
    assert cards_written == ["02-distill"] and "## Recipe" in (stage / "README.md").read_text()
    assert (out / "01-prune" / "README.md").is_file()  # every other stage folder keeps its own card
    assert (stage / "stage.json").is_file() and not list(stage.glob("checkpoint-*"))
    assert json.loads((stage / "compression_report.json").read_text())["steps"][-1]["training"]["global_step"] == 4


@pytest.mark.slow
def test_a_killed_distillation_stage_resumes_from_its_checkpoint(tmp_path, tiny_clip_dir):
    """Kill the run (SIGKILL) once the distillation stage has written a Trainer checkpoint: the stage folder does not
    look complete (no stage.json, no report), the rerun skips the finished prune stage, resumes from the checkpoint and
    finishes; no checkpoint is left in the final folder."""
    out = tmp_path / "out"
    path = _prune_then_distill(tmp_path, tiny_clip_dir, out, 4, max_steps=300, save_steps=10,
                               per_device_train_batch_size=16, logging_steps=100)
    env = dict(os.environ, VLMCOMPRESS_NO_PROGRESS="1")
    proc = subprocess.Popen([sys.executable, "-m", "vlmcompress", "compress", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    stage = out / "02-distill"
    deadline = time.time() + 400
    while time.time() < deadline and not any(stage.glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # far from the end (300 steps): the stage is mid-training
    proc.wait()
    assert (out / "01-prune" / "stage.json").is_file()
    assert not (stage / "stage.json").exists() and not (stage / "compression_report.json").exists()
    r = _cli("compress", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stage 01-prune: complete" in r.stdout and "resuming from checkpoint-" in r.stdout, r.stdout
    assert (stage / "stage.json").is_file() and not list(stage.glob("checkpoint-*"))
    report = json.loads((stage / "compression_report.json").read_text())
    assert report["steps"][-1]["method"] == "distillation" and report["base_model"] == str(out / "01-prune")
    assert report["steps"][-1]["cache_teacher"] is False  # the stage's cache_teacher: false reached the run (auto: on)


def test_push_without_a_token_is_one_line_and_keeps_the_stages(tmp_path, tiny_clip_dir):
    """The token is checked before any stage runs; finished stages of an earlier run stay as they were."""
    out = tmp_path / "out"
    recipe = {"model": str(tiny_clip_dir), "eval": {"skip": True}, "output_dir": str(out),
              "stages": [{"prune": {"head_ratio": 0.25, "importance": "magnitude"}}]}
    path = _write(tmp_path / "r.yaml", recipe)
    assert _cli("compress", path).returncode == 0
    before = (out / "01-prune" / "stage.json").read_text()
    recipe["push"] = {"repo_id": "me/x"}
    env = {"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    _one_line(cli_as_process("compress", _write(path, recipe), env=env), "needs a Hub token")
    assert (out / "01-prune" / "stage.json").read_text() == before
    # a token the Hub refuses (a real HTTP Hub on 127.0.0.1): one line before any stage, not after all of them
    from hub_server import HubServer

    recipe["stages"] = [{"prune": {"head_ratio": 0.5, "importance": "magnitude"}}]  # would rerun the stage
    with HubServer(tmp_path / "hub", token="hf_theRightToken0123456789") as hub:
        env.update(HF_ENDPOINT=hub.endpoint, HF_TOKEN="hf_aWrongToken0123456789")
        r = cli_as_process("compress", _write(path, recipe), env=env)
        _one_line(r, "401 Unauthorized for me/x: the token was refused")
        assert "nothing was run" in r.stderr and "hf_aWrongToken" not in r.stderr
        assert (out / "01-prune" / "stage.json").read_text() == before
        assert [request for request in hub.requests if "whoami" in str(request)]


def test_the_planner_meets_a_size_budget_exactly_or_names_the_smallest(tmp_path, tiny_clip_dir):
    """A budget between the smallest and the largest candidate: the chosen plan fits and the saved folder's weights
    are exactly the predicted bytes; every candidate is in the report. An impossible budget names the smallest size."""
    from vlmcompress.report import weights_size_bytes

    out = tmp_path / "out"
    recipe = {"model": str(tiny_clip_dir), "target": {"max_size_mib": 0.2},
              "data": {"eval": "vlmcompress/digits-test", "images_per_number": 1}, "eval": FAST_EVAL,
              "stages": [{"prune": {"importance": "magnitude"}}], "output_dir": str(out)}
    path = _write(tmp_path / "r.yaml", recipe)
    r = _cli("plan", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[:3] == ["plan", "params", "size"] and "best:" in r.stdout
    r = _cli("compress", path)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "01-prune" / "compression_report.json").read_text())
    plan = report["plan"]
    chosen = plan["candidates"][plan["chosen"]]
    assert len(plan["candidates"]) == 35 and chosen["fits"]
    assert chosen["size_bytes"] <= 0.2 * 2 ** 20
    assert weights_size_bytes(out / "01-prune") == chosen["size_bytes"]  # predicted exactly
    assert any(not c["fits"] for c in plan["candidates"])
    recipe["target"] = {"max_size_mib": 0.001}
    _one_line(_cli("plan", _write(tmp_path / "r.yaml", recipe)), "the smallest reachable is")


def test_example_recipes_validate():
    root = Path(__file__).resolve().parent.parent / "recipes"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"clip_small.yaml", "blip_small.yaml", "clip_b32.yaml", "clip_budget.yaml"} <= set(names)
    for name in names:
        recipe = load_recipe(root / name)
        assert recipe.stages and recipe.output_dir


@pytest.mark.distributed
def test_two_processes_under_accelerate(tmp_path, tiny_clip_dir):
    """accelerate launch with two real (gloo) processes: prune on the main process, distillation on both (DDP)."""
    out = tmp_path / "out"
    path = _write(tmp_path / "r.yaml", {
        "model": str(tiny_clip_dir), "data": {"train_images_per_number": 2}, "eval": {"skip": True},
        "output_dir": str(out), "stages": [{"prune": {"head_ratio": 0.25, "importance": "magnitude"}},
                                           {"distill": {"max_steps": 4, "per_device_train_batch_size": 8}}]})
    accelerate = Path(sys.executable).parent / "accelerate"
    recipe_script = Path(__file__).resolve().parent.parent / "recipes" / "compress.py"
    r = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", str(recipe_script), "--recipe", str(path)],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, VLMCOMPRESS_NO_PROGRESS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0/2: trained 4 steps (DistributedDataParallel)" in r.stdout
    assert "rank 1/2: trained 4 steps (DistributedDataParallel)" in r.stdout
    assert r.stdout.count("stage 01-prune: running") == 1  # the main process only
    report = json.loads((out / "02-distill" / "compression_report.json").read_text())
    assert report["steps"][-1]["processes"] == 2 and (out / "02-distill" / "stage.json").is_file()


def test_commands_and_pipeline_share_one_runner_per_stage():
    """`vlmcompress prune/quantize` and the recipe pipeline call the same runners (workflows.stages); neither writes
    the prune -> finish_checkpoint sequence itself."""
    import ast

    src = Path(__file__).resolve().parents[1] / "src" / "vlmcompress"
    callers = {"the cli package": sorted((src / "cli").glob("*.py")), "workflows/compress.py": [src / "workflows" / "compress.py"]}
    for caller, files in callers.items():
        called = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                  for path in files for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)}
        assert {"prune_stage", "quantize_stage"} <= called, caller
        assert not called & {"finish_checkpoint", "prune_model", "quantize", "save_quantized"}, caller
