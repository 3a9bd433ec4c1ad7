"""recipes/distill_clip.py end to end: one process, two real processes, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlmcompress.errors import VlmcompressError
from vlmcompress.report import read_report

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "distill_clip.py"
SMALL = ["--max_steps", "3", "--per_device_train_batch_size", "16", "--train_images_per_number", "2",
         "--eval_images_per_number", "2", "--importance", "magnitude", "--logging_steps", "1", "--disable_tqdm", "true",
         "--latency_rounds", "1"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", VLMCOMPRESS_NO_PROGRESS="1")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Teacher-output caches of these runs go to a temp folder, not ~/.cache."""
    monkeypatch.setenv("VLMCOMPRESS_CACHE", str(tmp_path / "cache"))
    ENV["VLMCOMPRESS_CACHE"] = str(tmp_path / "cache")


def _run(args, launcher=()):
    return subprocess.run([sys.executable, *launcher, str(RECIPE), *args], capture_output=True, text=True, env=ENV,
                          timeout=500)


def test_default_student_is_half_the_teacher_and_reloads_with_the_stock_class(tmp_path, capsys):
    """``run_distillation(argv)`` in this process: the recipe's run (the script itself runs as a process in
    test_bad_input_on_the_command_line_is_one_line_and_exit_1 and, with two processes, in the distributed tier)."""
    from transformers import CLIPModel, CLIPProcessor

    from vlmcompress.workflows.distill import run_distillation

    out = tmp_path / "student"
    threads = torch.get_num_threads()
    try:
        assert run_distillation([*SMALL, "--output_dir", str(out)], family="clip", prog="distill_clip") == 0
    finally:
        torch.set_num_threads(threads)
    assert "rank 0/1: trained 3 steps" in capsys.readouterr().out
    report = read_report(out)
    steps = [s["method"] for s in report["steps"]]
    assert steps == ["student_from_teacher", "layer_pruning", "mlp_pruning", "distillation"]
    distill = report["steps"][-1]
    assert distill["losses"] == {"logit": 1.0, "contrastive": 1.0} and distill["training"]["global_step"] == 3
    assert (distill["temperature"], distill["temperature_end"]) == (3.0, 1.0)
    assert distill["cache_teacher"] is True and list((tmp_path / "cache" / "teacher_outputs").glob("*.arrow"))
    assert {"loss_logit", "loss_contrastive"} <= set(distill["training"]["loss_log"][0])
    assert report["after"]["params"] <= 0.5 * report["before"]["params"]
    assert report["before"]["zero_shot_accuracy"] is not None and report["after"]["zero_shot_accuracy"] is not None
    # the inherited student was measured before training: its start (a point on the card's plot)
    start = report["steps"][2]["metrics"]
    assert start["zero_shot_accuracy"] is not None and start["params"] == report["after"]["params"]
    # layers dropped + every MLP pruned to one width: the stock class reloads it, no remote code
    assert report["loading"]["kind"] == "stock"
    model = CLIPModel.from_pretrained(out)
    assert model.config.vision_config.num_hidden_layers == 2 and model.config.text_config.intermediate_size == 384
    CLIPProcessor.from_pretrained(out)
    card = (out / "README.md").read_text()  # the generated model card, numbers from this run's report
    assert "distillation" in card and f"{report['after']['params']:,}" in card
    assert not (out / "teacher").exists() and not list(out.glob("checkpoint-*"))
    assert sum(p.numel() for p in model.parameters()) == report["after"]["params"]


def test_training_that_ends_below_the_students_start_is_warned_about(tmp_path, capsys):
    """A learning rate that wrecks the weights: the student ends below where it started, beyond the noise of the
    two figures, and one warning line names the likely causes."""
    from vlmcompress.workflows.distill import run_distillation

    threads = torch.get_num_threads()
    try:
        assert run_distillation([*SMALL, "--learning_rate", "1.0", "--warmup_steps", "0",
                                 "--output_dir", str(tmp_path / "wrecked")], family="clip") == 0
    finally:
        torch.set_num_threads(threads)
    report = read_report(tmp_path / "wrecked")
    start, after = report["steps"][2]["metrics"]["zero_shot_accuracy"], report["after"]["zero_shot_accuracy"]
    assert after < start
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: the student's")]
    assert len(warning) == 1 and "--learning_rate 1" in warning[0] and f"({start:.1%})" in warning[0]


def test_below_start_is_judged_against_the_noise_of_the_two_figures():
    from types import SimpleNamespace

    from vlmcompress.workflows.distill import below_start

    args = SimpleNamespace(learning_rate=4e-3, max_steps=900)
    start = {"zero_shot_accuracy": 0.5, "eval_images": 10_000}
    assert below_start(start, {"zero_shot_accuracy": 0.49, "eval_images": 10_000}, args) is None  # within 2 SE
    assert "after training (45.0%)" in below_start(start, {"zero_shot_accuracy": 0.45, "eval_images": 10_000}, args)
    assert below_start({**start, "eval_images": 100}, {"zero_shot_accuracy": 0.45, "eval_images": 100}, args) is None
    assert below_start(None, {"zero_shot_accuracy": 0.1}, args) is None
    captions = {"zero_shot_accuracy": None, "caption_accuracy": 0.9, "eval_images": 1000}
    assert "caption accuracy" in below_start(captions, {**captions, "caption_accuracy": 0.5}, args)


@pytest.mark.distributed
def test_two_real_processes_with_accelerate_launch(tmp_path):
    out = tmp_path / "ddp"
    launcher = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no"]
    r = _run([*SMALL, "--skip_eval", "true", "--output_dir", str(out)], launcher)
    assert r.returncode == 0, r.stderr[-3000:]
    # each rank reports itself, wrapped in DDP
    assert "rank 0/2: trained 3 steps (DistributedDataParallel)" in r.stdout
    assert "rank 1/2: trained 3 steps (DistributedDataParallel)" in r.stdout
    report = read_report(out)
    distill = report["steps"][-1]
    assert distill["processes"] == 2 and distill["batch_size"] == 32 and distill["distributed"] == "MULTI_CPU"
    assert report["before"] is None and report["after"] is None  # --skip_eval: recorded as not measured


class _Workflow:
    """The run behind the recipe, as a library: ``main(argv)`` returns the report or raises VlmcompressError."""

    def __getattr__(self, name):
        from vlmcompress.workflows import distill

        return getattr(distill, name)

    def main(self, argv):
        from vlmcompress.workflows import distill

        return distill.distill(*distill.parse_arguments(argv))


def _recipe_module():
    return _Workflow()


@pytest.mark.parametrize("args, message", [
    (["--student_config", "{not json"], "--student_config must be JSON"),
    (["--logit_weight", "0", "--contrastive_weight", "0"], "every loss weight is 0"),
    (["--teacher", "/nonexistent/teacher"], "does not exist"),
    (["--eval_images_per_number", "0"], "must be at least 1"),
    (["--mlp_ratio", "1.5"], r"fraction in \[0, 1\)"),
    (["--cache_teacher", "maybe"], "cache_teacher"),
    (["--prune_gradually", "true", "--mlp_ratio", "0"], "needs --head_ratio and/or --mlp_ratio"),
    (["--head_scope", "layerwise"], "one of per_layer, global"),
    (["--max_steps", "-5"], "--max_steps: expected a positive number of optimizer steps, got -5"),
    (["--max_stepz", "3"], "unknown option --max_stepz: did you mean --max_steps"),
    (["--foo", "3"], r"unknown option --foo \(.* --help lists them\)"),
    (["--freeze_towers", "txt"], "unknown tower 'txt'"),
])
def test_bad_input_raises_before_writing(tmp_path, args, message):
    from vlmcompress.errors import VlmcompressError

    out = tmp_path / "never"
    with pytest.raises(VlmcompressError, match=message):
        _recipe_module().main([*args, "--output_dir", str(out)])
    assert not out.exists()


def test_bad_input_on_the_command_line_is_one_line_and_exit_1(tmp_path):
    out = tmp_path / "never"
    r = _run(["--cache_teacher", "true", "--augment_shift", "2", "--output_dir", str(out)])
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("distill_clip: error: teacher caching needs the same inputs")
    assert "Traceback" not in r.stderr and not out.exists()


def test_students_from_a_config_and_from_a_checkpoint(processor, tiny_clip_dir, tmp_path):
    from vlmcompress.loading import load_checkpoint
    from vlmcompress.pruning.structural import prune_heads
    from vlmcompress.modeling import save_compressed

    recipe = _recipe_module()
    teacher, _, _ = load_checkpoint(str(tiny_clip_dir))
    args = recipe.StudentArguments(student_config='{"vision_config": {"num_hidden_layers": 1}, "text_config": {"hidden_size": 16, "intermediate_size": 64}}')
    student, steps = recipe.build_student(teacher, processor, args)
    assert student.config.vision_config.num_hidden_layers == 1 and student.config.text_config.hidden_size == 16
    assert student.config.text_config.num_hidden_layers == teacher.config.text_config.num_hidden_layers
    assert steps == [{"method": "student_from_config", "overrides": json.loads(args.student_config)}]

    prune_heads(teacher, {"vision": {0: [1]}})
    save_compressed(teacher, processor, tmp_path / "pruned")
    student, steps = recipe.build_student(None, processor, recipe.StudentArguments(student=str(tmp_path / "pruned")))
    assert student.config.vision_config.layer_num_heads == [3, 4] and steps[0]["method"] == "student_from_checkpoint"


def test_gradual_pruning_while_distilling_reaches_the_ratios_and_reloads(tiny_clip_dir, tmp_path):
    from vlmcompress.adapters import get_adapter
    from vlmcompress.loading import load_checkpoint

    out = tmp_path / "gradual"
    report = _recipe_module().main([
        "--teacher", str(tiny_clip_dir), "--keep_every", "1", "--head_ratio", "0.5", "--head_scope", "per_layer",
        "--mlp_ratio", "0.5", "--prune_gradually", "true", "--prune_end", "0.5", "--max_steps", "6",
        "--per_device_train_batch_size", "8", "--train_images_per_number", "1", "--eval_images_per_number", "1",
        "--disable_tqdm", "true", "--latency_rounds", "1", "--output_dir", str(out)])
    methods = [s["method"] for s in report["steps"]]
    assert "head_pruning" in methods and "mlp_pruning" in methods and methods.index("distillation") == len(methods) - 1
    gradual = next(s for s in report["steps"] if s["method"] == "mlp_pruning")
    assert gradual["schedule"] == "cubic" and gradual["end_step"] == 3
    model, _, _ = load_checkpoint(str(out))
    teacher, _, _ = load_checkpoint(str(tiny_clip_dir))
    for (_, _, attn), (_, _, t_attn) in zip(get_adapter(model).head_units(), get_adapter(teacher).head_units()):
        assert attn.num_heads == t_attn.num_heads // 2  # per layer: every layer keeps half its heads
    for (_, _, mlp), (_, _, t_mlp) in zip(get_adapter(model).mlp_units(), get_adapter(teacher).mlp_units()):
        assert mlp.num_neurons == t_mlp.num_neurons // 2
    assert report["after"]["params"] < report["before"]["params"]


def test_user_data_set_with_other_column_names(processor, tiny_clip_dir, tmp_path):
    import datasets

    from vlmcompress.embedded import digits

    def part(split, n):
        ds = digits.load_digits_dataset(split, images_per_number=1, numbers=range(n))
        return ds.rename_columns({"image": "img", "text": "caption", "label": "number"})

    folder = tmp_path / "user-data"
    datasets.DatasetDict({"train": part("train", 40), "validation": part("test", 10)}).save_to_disk(str(folder))
    out = tmp_path / "out"
    report = _recipe_module().main([
        "--teacher", str(tiny_clip_dir), "--dataset_name", str(folder), "--image_column", "img",
        "--caption_column", "caption", "--label_column", "number", "--eval_split", "validation",
        "--max_steps", "2", "--per_device_train_batch_size", "8", "--importance", "magnitude",
        "--disable_tqdm", "true", "--latency_rounds", "1", "--output_dir", str(out)])
    assert report["after"]["eval_dataset"] != "vlmcompress/digits-test"  # scored on the user's validation split
    assert report["after"]["zero_shot_accuracy"] is not None
    assert read_report(out)["steps"][-1]["training"]["global_step"] == 2


BLIP_RECIPE = RECIPE.parent / "distill_blip.py"
BLIP_SMALL = ["--max_steps", "3", "--per_device_train_batch_size", "16", "--train_images_per_number", "2",
              "--eval_images_per_number", "1", "--importance", "magnitude", "--logging_steps", "1", "--disable_tqdm", "true",
              "--latency_rounds", "1"]


def test_distill_blip_captioner_from_the_embedded_teacher(tmp_path, capsys):
    """``run_distillation(argv, family="blip")`` in this process (the BLIP script itself runs as a process in
    test_distill_blip_refuses_the_embedding_cache and, with two processes, in the distributed tier)."""
    from transformers import BlipForConditionalGeneration

    from vlmcompress.workflows.distill import run_distillation

    out = tmp_path / "blip-student"
    threads = torch.get_num_threads()
    try:
        assert run_distillation([*BLIP_SMALL, "--output_dir", str(out)], family="blip", prog="distill_blip") == 0
    finally:
        torch.set_num_threads(threads)
    stdout = capsys.readouterr().out
    report = read_report(out)
    assert report["model_family"] == "blip"
    assert [s["method"] for s in report["steps"]] == ["student_from_teacher", "layer_pruning", "mlp_pruning", "distillation"]
    assert set(report["steps"][1]["removed_layers"]) == {"vision", "text_decoder"}
    distill = report["steps"][-1]
    assert distill["losses"] == {"token": 1.0, "caption": 0.5} and distill["cache_teacher"] is False
    assert {"loss_token", "loss_caption"} <= set(distill["training"]["loss_log"][0])
    assert report["before"]["caption_accuracy"] is not None and report["after"]["caption_accuracy"] is not None
    assert report["after"]["params"] <= 0.5 * report["before"]["params"]
    assert report["loading"] == {"kind": "stock", "class": "BlipForConditionalGeneration"}
    model = BlipForConditionalGeneration.from_pretrained(out).eval()
    assert model.config.text_config.num_hidden_layers == 2 and model.text_decoder.bert.encoder.layer[1].attention.self.layer_idx == 1
    assert model.generate(pixel_values=torch.zeros(1, 3, 56, 56), max_new_tokens=4).shape[0] == 1
    card = (out / "README.md").read_text()
    assert "blip-digits-captioner" in card and "caption accuracy" in card and "model.generate" in card
    assert "student keeps" in stdout and "caption accuracy" in stdout


def test_distill_blip_refuses_the_embedding_cache(tmp_path):
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, str(BLIP_RECIPE), "--cache_teacher", "true", "--output_dir", str(out)],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr and not out.exists()
    assert r.stderr.strip().splitlines()[-1].startswith("distill_blip: error: --cache_teacher stores image/text embeddings")


@pytest.mark.distributed
def test_distill_blip_with_two_real_processes(tmp_path):
    out = tmp_path / "blip-ddp"
    launcher = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no"]
    r = subprocess.run([sys.executable, *launcher, str(BLIP_RECIPE), *BLIP_SMALL, "--skip_eval", "true",
                        "--output_dir", str(out)], capture_output=True, text=True, env=ENV, timeout=500)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0/2: trained 3 steps (DistributedDataParallel)" in r.stdout
    assert "rank 1/2: trained 3 steps (DistributedDataParallel)" in r.stdout
    distill = read_report(out)["steps"][-1]
    assert distill["processes"] == 2 and distill["batch_size"] == 32 and distill["losses"] == {"token": 1.0, "caption": 0.5}


def test_recipe_output_folder_rule(tmp_path, capsys):
    """--output_dir holding a user's files is refused whatever the flag; an earlier result needs --overwrite_output_dir."""
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    from vlmcompress.workflows.distill import run_distillation

    # the command line: one line, exit 1 (the script's own process shows the same in test_bad_input_on_the_command_...)
    assert run_distillation(["--output_dir", str(user), "--overwrite_output_dir"], prog="distill_clip") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("distill_clip: error: output folder"), err
    assert "did not write" in err and (user / "notes.txt").read_text() == "mine"
    from vlmcompress.errors import VlmcompressError

    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "compression_report.json").write_text('{"format_version": 1, "vlmcompress_version": "0.1.0"}')
    for args, message in ((["--output_dir", str(user)], "did not write"),
                          (["--output_dir", str(ours)], "pass --overwrite_output_dir"),
                          (["--output_dir", ""], "output folder is empty")):
        with pytest.raises(VlmcompressError, match=message):
            _recipe_module().main(args)
    assert (user / "notes.txt").read_text() == "mine" and (ours / "compression_report.json").exists()


def test_a_frozen_text_tower_is_the_teachers_and_only_the_image_tower_is_compressed(tiny_clip_dir, tmp_path):
    """``--freeze_towers text``: the inherited student keeps the teacher's text tower whole, its weights never move,
    the image tower is shrunk and trained, and the report and card say so."""
    from safetensors.torch import load_file

    out = tmp_path / "image-only"
    report = _recipe_module().main([
        "--teacher", str(tiny_clip_dir), "--freeze_towers", "text", "--max_steps", "4", "--learning_rate", "1e-2",
        "--per_device_train_batch_size", "8", "--train_images_per_number", "1", "--eval_images_per_number", "1",
        "--importance", "magnitude", "--disable_tqdm", "true", "--latency_rounds", "1", "--output_dir", str(out)])
    teacher, student = load_file(str(tiny_clip_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    text = [k for k in teacher if k.startswith(("text_model.", "text_projection."))]
    assert text and all(torch.equal(teacher[k], student[k]) for k in text)
    vision = [k for k in student if k.startswith("vision_model.") and k in teacher]
    assert len(vision) < sum(k.startswith("vision_model.") for k in teacher)  # layers dropped
    assert any(not torch.equal(teacher[k], student[k]) for k in vision if teacher[k].shape == student[k].shape)
    distill = report["steps"][-1]
    assert distill["frozen_towers"] == ["text"] and report["steps"][0]["pruning"]["towers"] == ["vision"]
    assert "frozen (not trained): the text tower" in (out / "README.md").read_text()
    with pytest.raises(VlmcompressError, match="unknown tower 'txt'"):
        _recipe_module().main(["--teacher", str(tiny_clip_dir), "--freeze_towers", "txt", "--max_steps", "1",
                               "--train_images_per_number", "1", "--output_dir", str(tmp_path / "bad")])
    with pytest.raises(VlmcompressError, match="leaves no tower to shrink"):
        _recipe_module().main(["--teacher", str(tiny_clip_dir), "--freeze_towers", "vision,text", "--max_steps", "1",
                               "--train_images_per_number", "1", "--output_dir", str(tmp_path / "bad2")])


def test_an_evaluation_set_the_teacher_cannot_be_scored_on_fails_before_training(tiny_clip_dir, tmp_path,
                                                                                   monkeypatch):
    """The teacher is evaluated before the student trains: one unreadable image in --eval_dataset_name stops the run
    before its first step (it used to surface after the whole training run, with the student lost)."""
    from PIL import Image
    from transformers import Trainer

    for c in ("a", "b"):
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (100 * i, 0, 0)).save(tmp_path / "photos" / c / f"{i}.png")
    (tmp_path / "photos" / "b" / "broken.png").write_bytes(b"not a png")
    steps = []
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: steps.append(1) or torch.tensor(0.0))
    out = tmp_path / "never"
    with pytest.raises(Exception, match="broken.png"):
        _recipe_module().main(["--teacher", str(tiny_clip_dir), "--eval_dataset_name", str(tmp_path / "photos"),
                               "--max_steps", "50", "--per_device_train_batch_size", "8",
                               "--train_images_per_number", "1", "--importance", "magnitude", "--output_dir", str(out)])
    assert not steps and not out.exists()


def test_distill_takes_the_other_commands_spellings():
    """`--overwrite` as the other commands spell it, and kebab-case flags, beside distill's snake_case."""
    from vlmcompress.workflows.distill import parse_arguments

    assert parse_arguments(["--overwrite"])[3].overwrite_output_dir is True
    assert parse_arguments(["--overwrite_output_dir"])[3].overwrite_output_dir is True
    student, data, config, training = parse_arguments(["--max-steps", "7", "--keep-every", "3", "--text-weight", "0.5",
                                                        "--text-dataset", "embedded", "--latency-rounds", "4"])
    assert (training.max_steps, student.keep_every, config.text_weight, data.latency_rounds) == (7, 3, 0.5, 4)
    assert parse_arguments([])[3].overwrite_output_dir is False


def test_a_pretrained_teacher_gets_fine_tuning_defaults_unless_the_learning_rate_is_given(tiny_clip_dir):
    """The embedded job's learning rate (4e-3) wrecks a pretrained model: a teacher that is not embedded is distilled
    at USER_MODEL_DEFAULTS when the command line (or recipe) gives no learning rate, and the note says so."""
    from vlmcompress.workflows.distill import USER_MODEL_DEFAULTS, parse_arguments, user_model_defaults

    *_, args = parse_arguments(["--teacher", str(tiny_clip_dir), "--output_dir", "x"])
    assert args.learning_rate == 4e-3 and not args.learning_rate_given
    note = user_model_defaults(args, str(tiny_clip_dir))
    assert args.learning_rate == USER_MODEL_DEFAULTS["learning_rate"] and args.warmup_steps == 0.1
    assert "not an embedded teacher" in note and "--learning_rate" in note
    *_, given = parse_arguments(["--teacher", str(tiny_clip_dir), "--output_dir", "x", "--learning-rate", "1e-3"])
    assert given.learning_rate_given and user_model_defaults(given, str(tiny_clip_dir)) is None
    assert given.learning_rate == 1e-3
    *_, embedded = parse_arguments(["--output_dir", "x"])  # the embedded teacher keeps its tuned defaults
    assert user_model_defaults(embedded, None) is None and embedded.learning_rate == 4e-3


def test_progress_lines_give_step_share_and_time_left_where_no_bar_is_drawn():
    """Off a terminal the Trainer draws no bar: ProgressLines prints one line per logging step with the step, the
    share done, the time taken, the time left and the loss terms."""
    import io
    from types import SimpleNamespace

    from vlmcompress.distillation.trainer import ProgressLines
    from vlmcompress.workflows.distill import parse_arguments

    out = io.StringIO()
    lines = ProgressLines(file=out)
    state = SimpleNamespace(global_step=0, max_steps=100, is_world_process_zero=True)
    lines.on_train_begin(None, state, None)
    lines.started -= 10.0  # ten seconds in
    state.global_step = 25
    lines.on_log(None, state, None, logs={"loss": 1.23456, "loss_logit": 0.5, "epoch": 0.3, "total_flos": 7})
    text = out.getvalue().strip()
    assert text.startswith("step 25/100 (25%), 0m10s elapsed, about 0m30s left: loss 1.235, loss_logit 0.5"), text
    assert "epoch" not in text and "flos" not in text
    # from the command line: off a terminal (pytest's captured stderr) no bar, unless asked for
    *_, args = parse_arguments(["--output_dir", "x"])
    assert args.disable_tqdm is True
    *_, args = parse_arguments(["--output_dir", "x", "--disable_tqdm", "false"])
    assert args.disable_tqdm is False


@pytest.mark.parametrize("family", ["clip", "blip"])
def test_help_shows_our_options_first_and_training_arguments_under_one_heading(family):
    from vlmcompress.utils import hf_argument_parser
    from vlmcompress.workflows.distill import ARGUMENTS, USAGE

    text = hf_argument_parser(ARGUMENTS[family], prog="vlmcompress distill", usage=USAGE).format_help()
    headings = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ") and
                line.endswith(":")]
    assert headings == ["options", "student", "data", "distillation", "training"], headings
    assert text.index("--temperature") < text.index("training: transformers") < text.index("--gradient_accumulation_steps")
    assert len(text.split("training: transformers")[0].splitlines()) < 260  # ours fit before TrainingArguments'
    steps = ARGUMENTS[family][-1].max_steps
    assert f"max_steps {steps}" in text.split("training: transformers")[1].splitlines()[0]  # the heading's defaults
