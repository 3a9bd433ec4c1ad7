"""Committed results against today's code: every example card and evidence page records the settings it ran with,
and these tests resolve the same command, recipe or benchmark row with today's defaults. A changed default (or row)
fails here, naming the file to regenerate, instead of leaving a published number silently stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchmarks._common import in_effect, recipe_effective, stages_current

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "model_cards" / "examples"
RESULTS = ROOT / "benchmarks" / "results"


def _examples():
    from model_cards.make_examples import EXAMPLES

    return EXAMPLES


def _report(name: str) -> dict:
    return json.loads((EXAMPLES / name / "compression_report.json").read_text())


def _regenerate(name: str) -> str:
    return f"model_cards/examples/{name} is stale: regenerate it with `python model_cards/make_examples.py {name}`"


def _cli_configs(argv: list) -> dict:
    """{kind: effective settings} of the method config a vlmcompress command line runs."""
    from vlmcompress import cli

    args = cli.build_parser().parse_args([a.replace("{base}", "base-folder") for a in argv] + ["--output-dir", "x"])
    build = {"prune": cli.pruning_config, "quantize": cli.quantization_config}[args.command]
    config = build(args)
    return {config.kind: config.effective()}


def _distill_expected(family: str) -> dict:
    """What a distill recipe run with no arguments records: the distillation config, the training figures and the
    inherited student's pruning."""
    from vlmcompress.pruning.config import PruningConfig
    from vlmcompress.workflows.distill import inherited_pruning, parse_arguments

    student, _, config, training = parse_arguments([], family=family)
    return {"config": config.to_dict(), "max_steps": training.max_steps,
            "batch_size": training.per_device_train_batch_size, "learning_rate": training.learning_rate,
            "pruning": PruningConfig(**inherited_pruning(student)).to_dict()}


def _distill_recorded(report: dict) -> dict:
    step = next(s for s in report["steps"] if s["method"] == "distillation")
    start = next(s for s in report["steps"] if s["method"] == "student_from_teacher")
    return {"config": step["config"], "max_steps": step["max_steps"], "batch_size": step["batch_size"],
            "learning_rate": step["learning_rate"], "pruning": start["pruning"]}


@pytest.mark.parametrize("example", [e.name for e in _examples()])
def test_every_example_card_ran_with_todays_settings(example):
    spec = next(e for e in _examples() if e.name == example)
    assert (EXAMPLES / example / "compression_report.json").is_file(), _regenerate(example)
    report = _report(example)
    if spec.recipe:  # recipes/distill_*.py with their defaults
        family = "blip" if spec.recipe.endswith("blip") else "clip"
        assert in_effect(_distill_recorded(report)) == in_effect(_distill_expected(family)), _regenerate(example)
    elif spec.argv[0] == "compress":  # a recipe file: the committed copy is today's, its last stage ran as it says
        from vlmcompress.workflows.recipe import recipe_from_dict, stage_configs

        recipe_path = Path(spec.argv[1])
        ours = yaml.safe_load(recipe_path.read_text())
        assert yaml.safe_load((EXAMPLES / example / "recipe.yaml").read_text())["stages"] == ours["stages"], \
            _regenerate(example)
        recipe = recipe_from_dict(ours, path=str(recipe_path))
        last = recipe.stages[-1]
        config = stage_configs(last, recipe.family, first=last.index == 1)
        assert in_effect((report.get("effective_settings") or {}).get(config.kind)) == in_effect(config.effective()), \
            _regenerate(example)
    else:
        assert in_effect(report.get("effective_settings")) == in_effect(_cli_configs(spec.argv)), _regenerate(example)


def test_the_checks_ignore_only_scopes_no_ratio_used():
    """A head or MLP scope counts where units were removed by that ratio, and nowhere else."""
    used = {"pruning": {"head_ratio": 0.25, "head_scope": "global", "mlp_ratio": 0.0, "mlp_scope": "per_layer"}}
    assert in_effect(used) == {"pruning": {"head_ratio": 0.25, "head_scope": "global", "mlp_ratio": 0.0}}
    assert in_effect(used) != in_effect({"pruning": {**used["pruning"], "head_scope": "per_layer"}})
    idle = {"head_ratio": 0.0, "head_scope": "global", "mlp_ratio": 0.5, "mlp_scope": "per_layer"}
    assert in_effect([idle]) == [{"head_ratio": 0.0, "mlp_ratio": 0.5, "mlp_scope": "per_layer"}]
    narrow = {"hidden_ratio": 0.5, "head_ratio": 0.0, "head_scope": "global"}  # the width keeps every layer's heads
    assert "head_scope" not in in_effect(narrow)
    before = {"temperature": 3.0}  # recorded before temperature_end existed: ran as temperature_end None does
    assert in_effect(before) == in_effect({**before, "temperature_end": None})
    assert in_effect(before) != in_effect({**before, "temperature_end": 1.0})


def test_a_losss_own_setting_counts_only_where_the_loss_is_on():
    """The similarity KL's temperature (and its schedule) where the KL's weight is 0, the embedding loss's form without
    the embedding term: never read, so a changed default of either is no reason to re-run (or not to reuse) a result."""
    hard_targets = {"logit_weight": 0.0, "temperature": 3.0, "temperature_end": None, "embedding_weight": 0.0,
                    "embedding_loss": "mse", "contrastive_weight": 1.0}
    assert in_effect(hard_targets) == {"logit_weight": 0.0, "embedding_weight": 0.0, "contrastive_weight": 1.0}
    assert in_effect(hard_targets) == in_effect({**hard_targets, "temperature": 1.0, "temperature_end": 1.0,
                                                 "embedding_loss": "cosine"})
    kl = {**hard_targets, "logit_weight": 1.0}  # the KL on: its temperature and schedule count
    assert in_effect(kl) != in_effect({**kl, "temperature": 1.0})
    assert in_effect(kl) != in_effect({**kl, "temperature_end": 1.0})
    # the embedding loss's form is read by the unpaired-text term too: with text_weight on it counts
    texts = {**hard_targets, "text_weight": 1.0, "text_batch_size": 64}
    assert in_effect(texts) != in_effect({**texts, "embedding_loss": "cosine"})
    assert in_effect(texts) != in_effect({**texts, "text_batch_size": 32})
    # a result from before text_weight existed ran without the term: the form and draw size do not count
    assert in_effect(hard_targets) == in_effect({**hard_targets, "text_weight": 0.0, "text_batch_size": 32})


def test_the_example_check_sees_a_changed_default():
    """What heads25 would have recorded had the ablation importance's default calibration size been 256: the check
    above tells it apart from today's."""
    argv = next(e for e in _examples() if e.name == "heads25").argv
    recorded = json.loads(json.dumps(_cli_configs(argv)))
    assert recorded["pruning"]["calibration_samples"] == 512 and recorded["pruning"]["importance"] == "ablation"
    recorded["pruning"]["calibration_samples"] = 256
    assert recorded != _cli_configs(argv)


def _suite_rows_today(data: dict) -> dict:
    """{row name: stages} of an evidence suite's rows as today's benchmarks/run.py defines them, with the settings the
    committed run recorded."""
    from vlmcompress.embedded.blip_captioner import blip_teacher_path
    from vlmcompress.loading import resolve_model_path

    import benchmarks.run as bench

    suite = data["suite"]
    teacher = blip_teacher_path() if suite.startswith("blip") else resolve_model_path(None)
    teacher_config = json.loads((Path(teacher) / "config.json").read_text())
    s = dict(data["settings"], accuracy=bench.ACCURACY[suite], family=bench.RECIPE_FAMILY[suite])
    rows, done = bench.ROWS[suite](s, teacher_config), {}
    out = {}
    for row in rows:
        recipe = bench.row_recipe(row, s, Path("work"), done)
        done[row["name"]] = {"stages": [{"folder": f"{row['name']}/{i}"} for i in range(1, len(row["stages"]) + 1)]}
        out[row["name"]] = recipe
    return out


def evidence_problem(data: dict, name: str) -> str | None:
    """Why an evidence suite's result file no longer describes what today's code would run (None: it does)."""
    from vlmcompress.pruning.config import PruningConfig

    rerun = f"{name} is stale: re-run `python benchmarks/run.py --suite {data['suite']}`"
    if data["default_importance"] != PruningConfig.importance:
        return rerun + f" (measured with the default importance {data['default_importance']})"
    today = _suite_rows_today(data)
    recorded = {row["name"]: row for row in data["rows"]}
    if sorted(recorded) != sorted(today):
        return rerun + " (its rows differ from today's)"
    changed = [n for n in today if recorded[n]["recipe"]["stages"] != today[n]["stages"]]
    if changed:
        return rerun + f" (rows defined differently today: {', '.join(changed[:3])})"
    # every row's stages record the effective settings they ran with (rows from before runs recorded them: resolved
    # by the code of the commit that brought their figures, effective_resolved_at): the library's defaults they ran
    # with are today's
    for n, row in recorded.items():
        current = stages_current(row["stages"], today[n])
        if current is None:
            return rerun + f" (row {n!r} records no effective settings to compare with today's)"
        if current is False:
            return rerun + f" (row {n!r} ran with other settings than today's defaults give)"
    return None


@pytest.mark.parametrize("name", sorted(p.stem for p in RESULTS.glob("evidence_*.json")))
def test_every_evidence_page_ran_todays_rows_with_todays_defaults(name):
    data = json.loads((RESULTS / f"{name}.json").read_text())
    assert evidence_problem(data, f"benchmarks/results/{name}.json") is None


def test_the_evidence_check_sees_changed_rows_and_defaults():
    data = json.loads((RESULTS / "evidence_generalization_long.json").read_text())
    row = next(r for r in data["rows"] if r["stages"][0]["kind"] == "prune")
    resolved = recipe_effective(_suite_rows_today(data)[row["name"]])
    for stage, effective in zip(row["stages"], resolved):
        stage["effective"] = effective  # what a run with today's code records
    assert evidence_problem(data, "x") is None
    row["stages"][0]["effective"]["pruning"]["calibration_samples"] = 64  # as if the default had been 64
    assert "ran with other settings" in evidence_problem(data, "x")
    saved = [stage.pop("effective") for stage in row["stages"]]
    assert "records no effective settings" in evidence_problem(data, "x")
    for stage, effective in zip(row["stages"], saved):
        stage["effective"] = effective
    row["recipe"]["stages"][0]["prune"]["head_ratio"] = 0.3
    assert "rows defined differently today" in evidence_problem(data, "x")
    data["default_importance"] = "taylor"
    assert "default importance taylor" in evidence_problem(data, "x")


def recipes_problem(data: dict, name: str) -> str | None:
    """Why the recipes page no longer describes what today's recipe files run (None: it does)."""
    from benchmarks.recipes import seeded

    for run in data["runs"]:
        path = ROOT / "recipes" / f"{run['recipe']}.yaml"
        if not path.is_file():
            return f"{name} is stale: recipes/{run['recipe']}.yaml is gone; re-run without it"
        rerun = (f"{name} is stale: re-run `python benchmarks/recipes.py --recipes {run['recipe']} --json {name}` "
                 f"(with the other recipes it lists)")
        today = seeded(yaml.safe_load(path.read_text()), run["seed"], quick=data.get("quick", False))
        if run["stages_run"] != today["stages"]:
            return rerun + f" (recipes/{run['recipe']}.yaml changed its stages)"
        for stage, want in zip(run["stages"], recipe_effective(today)):
            if want is not None and in_effect(stage.get("effective")) != in_effect(want):
                return rerun + f" ({stage['stage']} ran with other settings than today's defaults give)"
    return None


@pytest.mark.skipif(not (RESULTS / "recipes.json").is_file(), reason="no recipes page committed")
def test_the_recipes_page_ran_todays_recipes_with_todays_defaults():
    data = json.loads((RESULTS / "recipes.json").read_text())
    assert not data.get("quick") and recipes_problem(data, "benchmarks/results/recipes.json") is None


def test_the_recipes_check_sees_a_changed_recipe_and_default():
    from benchmarks.recipes import seeded

    recipe = yaml.safe_load((ROOT / "recipes" / "clip_small.yaml").read_text())
    run = {"recipe": "clip_small", "seed": 43, "stages_run": seeded(recipe, 43)["stages"]}
    run["stages"] = [{"stage": f"0{i}", "effective": want}
                     for i, want in enumerate(recipe_effective(seeded(recipe, 43)), 1)]
    data = {"runs": [run]}
    assert recipes_problem(data, "x") is None
    run["stages"][1]["effective"]["quantization"]["double_quant"] = True  # as if the default had been True
    assert "02 ran with other settings" in recipes_problem(data, "x")
    run["stages_run"][0]["distill"]["max_steps"] = 900
    assert "changed its stages" in recipes_problem(data, "x")
