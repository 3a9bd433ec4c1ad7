import json

import pytest

from test_cli import _assert_one_line_error, run_cli
from vlmcompress.errors import VlmcompressError
from vlmcompress.pruning.config import PruningConfig, prune_model
from vlmcompress.report import read_report
from conftest import tiny_clip


def test_prune_model_by_ratio_and_strategy(processor):
    model = tiny_clip(processor, layers=4)
    cfg = PruningConfig(importance="magnitude", head_ratio=0.25, mlp_ratio=0.5, layer_strategy="every_k", keep_every=2)
    steps = prune_model(model, cfg, processor)
    assert [s["method"] for s in steps] == ["layer_pruning", "head_pruning", "mlp_pruning"]
    assert steps[0]["removed_layers"] == {"vision": [1, 3], "text": [1, 3]}
    # heads named in original layer numbers (0 and 2 survive)
    assert set(steps[1]["removed_heads"]["vision"]) <= {"0", "2"}
    assert sum(len(h) for h in steps[1]["removed_heads"]["vision"].values()) == 2  # 25% of 8
    assert model.config.vision_config.intermediate_size == 64  # uniform 50% per layer: stock config describes it


def test_pruning_config_errors():
    with pytest.raises(VlmcompressError, match="nothing to prune"):
        PruningConfig().validate()
    with pytest.raises(VlmcompressError, match="fraction"):
        PruningConfig(head_ratio=1.5).validate()
    with pytest.raises(VlmcompressError, match="unknown pruning option"):
        PruningConfig.from_dict({"heads": 0.5})


def test_prune_cli_writes_checkpoint_report_and_config(tiny_clip_dir, tmp_path):
    out = tmp_path / "pruned"
    r = run_cli("prune", str(tiny_clip_dir), "-o", str(out), "--head-ratio", "0.25", "--importance", "taylor",
                "--dataset", "vlmcompress/digits-train", "--calibration-samples", "32", "--drop-layers", "text:1", "--images-per-number", "1", "--latency-rounds", "2",
                "--latency-batch-size", "4", "--save-scores", str(tmp_path / "scores.json"))
    assert r.returncode == 0, r.stderr
    report = read_report(out)
    assert [s["method"] for s in report["steps"]] == ["layer_pruning", "head_pruning"]
    assert report["after"]["params"] < report["before"]["params"]
    assert report["after"]["size_bytes"] < report["before"]["size_bytes"]
    assert report["loading"]["kind"] == "remote_code"
    assert json.loads((out / "pruning_config.json").read_text())["head_ratio"] == 0.25
    assert (out / "modeling_vlmcompress.py").exists()
    assert json.loads((tmp_path / "scores.json").read_text())["heads"]["vision"]["0"]
    assert "before" in r.stdout and "after" in r.stdout
    # the latency change is measured side by side in this run (interleaved rounds), with its spread
    side = report["after"]["latency_vs_base"]
    assert side["rounds"] == 2 and len(side["base_ms"]) == len(side["model_ms"]) == 2 and side["batch_size"] == 4
    assert side["ratio_min"] <= side["ratio"] <= side["ratio_max"]
    # two rounds: the ratio is printed as indicative, without a range, and the table's latency row is the same
    # side-by-side measurement (it used to show two separate runs' figures beside a ratio that disagreed)
    line = next(x for x in r.stdout.splitlines() if x.startswith("latency after/before:"))
    assert "2 rounds: indicative, no range" in line and "range " not in line.replace("no range", "")
    latency_row = next(x for x in r.stdout.splitlines() if x.startswith("latency"))
    import statistics
    shown = [float(c) for c in latency_row.replace("ms", " ").split()[-2:]]
    assert shown == pytest.approx([statistics.median(side["base_ms"]), statistics.median(side["model_ms"])], abs=0.06)


def test_prune_cli_bad_input_leaves_nothing(tiny_clip_dir, tmp_path):
    out = tmp_path / "never"
    _assert_one_line_error(run_cli("prune", str(tiny_clip_dir), "-o", str(out), "--head-plan",
                                   '{"vision": {"0": [0, 1, 2, 3]}}', "--no-eval"), "removes all 4 heads")
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    _assert_one_line_error(run_cli("prune", str(tiny_clip_dir), "-o", str(out)), "nothing to prune")
    _assert_one_line_error(run_cli("prune", str(tiny_clip_dir), "-o", str(out), "--drop-layers", "vision"), "TOWER:N")


def test_scores_from_another_shape_are_rejected(processor):
    from vlmcompress.pruning.importance import MagnitudeImportance

    model = tiny_clip(processor, layers=2)
    scores = MagnitudeImportance()(model)
    cfg = PruningConfig(head_ratio=0.25, drop_layers={"text": [1]})
    with pytest.raises(VlmcompressError, match="do not match"):
        prune_model(model, cfg, processor, scores=scores)


def test_prune_cli_calibrates_on_a_user_dataset(tiny_clip_dir, tmp_path):
    from vlmcompress.embedded import digits

    ds = digits.load_digits_dataset("train", images_per_number=1).rename_column("text", "caption")
    ds.save_to_disk(tmp_path / "calib")
    out = tmp_path / "pruned"
    r = run_cli("prune", str(tiny_clip_dir), "-o", str(out), "--mlp-ratio", "0.5", "--calibration-samples", "16",
                "--dataset", str(tmp_path / "calib"), "--text-column", "caption", "--no-eval")
    assert r.returncode == 0, r.stderr
    assert read_report(out)["steps"][0]["method"] == "mlp_pruning"
    r = run_cli("prune", str(tiny_clip_dir), "-o", str(out), "--overwrite", "--mlp-ratio", "0.5", "--dataset", str(tmp_path / "calib"),
                "--no-eval")
    _assert_one_line_error(r, "no column 'text'")


def test_a_users_model_is_not_calibrated_on_the_embedded_digits_unless_asked(tiny_clip_dir, tmp_path):
    """Pruning a model that is not an embedded teacher by a data-driven importance, with no calibration data: one
    line asking for data from its domain (or naming magnitude), before the model is loaded; the same in a recipe.
    Magnitude, explicit plans and the named embedded split need no such data."""
    from vlmcompress.errors import VlmcompressError
    from vlmcompress.workflows.compress import Pipeline
    from vlmcompress.workflows.recipe import recipe_from_dict

    out = tmp_path / "p"
    for extra in ([], ["--importance", "fisher"], ["--layer-strategy", "block_influence", "--remove-layers", "vision:1"]):
        args = extra or ["--head-ratio", "0.25"]
        if extra and extra[0] == "--importance":
            args = ["--mlp-ratio", "0.5", *extra]
        _assert_one_line_error(run_cli("prune", str(tiny_clip_dir), "-o", str(out), *args, "--no-eval"),
                               "needs calibration data from its own domain: give --calibration-dataset")
        assert not out.exists()
    for ok in (["--head-ratio", "0.25", "--importance", "magnitude"], ["--head-plan", '{"vision": {"0": [1]}}'],
               ["--head-ratio", "0.25", "--importance", "taylor", "--calibration-dataset", "vlmcompress/digits-train",
                "--calibration-samples", "16"]):
        r = run_cli("prune", str(tiny_clip_dir), "-o", str(out), *ok, "--no-eval", "--overwrite")
        assert r.returncode == 0, r.stderr
    recipe = recipe_from_dict({"model": str(tiny_clip_dir), "output_dir": str(tmp_path / "r"),
                               "stages": [{"prune": {"mlp_ratio": 0.5}}]})
    with pytest.raises(VlmcompressError, match="needs calibration data from its own domain: give data.train"):
        Pipeline(recipe).run()
    assert not (tmp_path / "r" / "01-prune").exists()
