"""``benchmarks/recipes.py``: the shipped recipes over seeds. Fast: what a run executes (the committed recipe, only
the distill seed set), the summary and the page; slow: ``--quick`` runs a recipe end to end and resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks import recipes as bench
from benchmarks import render_pages as pages

ROOT = Path(__file__).resolve().parent.parent


def test_a_run_is_the_committed_recipe_with_only_the_distill_seed_set():
    recipe = yaml.safe_load((ROOT / "recipes" / "clip_budget.yaml").read_text())
    run = bench.seeded(recipe, 43)
    kinds = [next(iter(s)) for s in run["stages"]]
    assert kinds == ["prune", "distill", "quantize"]
    for before, after in zip(recipe["stages"], run["stages"]):
        (kind, options), = before.items()
        expected = {**(options or {}), "seed": 43} if kind == "distill" else (options or {})
        assert after[kind] == expected
    assert {k: v for k, v in run.items() if k != "stages"} == {k: v for k, v in recipe.items() if k != "stages"}
    assert recipe["stages"][1]["distill"].get("seed") is None  # the committed recipe is not touched
    quick = bench.seeded(recipe, 42, quick=True)
    assert quick["stages"][1]["distill"]["max_steps"] == 2 and quick["data"]["images_per_number"] == 1


def _run(recipe: str, seed: int, seen: float, held: float) -> dict:
    after = {"zero_shot_accuracy": seen, "zero_shot_accuracy_heldout": held, "size_bytes": 1000}
    return {"recipe": recipe, "seed": seed, "teacher": {"zero_shot_accuracy": 0.9, "zero_shot_accuracy_heldout": 0.8,
                                                        "size_bytes": 10000},
            "stages": [{"stage": "01-distill", "seconds": 10.0, "after": {}}, {"stage": "02-quantize", "seconds": 2.0,
                                                                               "after": after}]}


def test_the_summary_is_mean_and_sd_of_the_final_stage_and_kept_against_the_teacher():
    runs = [_run("a", 42, 0.88, 0.80), _run("a", 43, 0.90, 0.84), _run("b", 42, 0.5, 0.4)]
    s = bench.summarise(runs)
    assert s["a"]["seeds"] == [42, 43] and s["b"]["seeds"] == [42]
    assert s["a"]["seen"][0] == pytest.approx(0.89) and s["a"]["seen"][1] == pytest.approx(0.0141421, rel=1e-4)
    assert s["a"]["kept_heldout"] == pytest.approx(0.82 / 0.8) and s["a"]["size_share"] == pytest.approx(0.1)
    assert s["a"]["stage_seconds"] == [12.0, 0.0] and s["b"]["seen"][1] == 0.0
    page = pages.render_recipes("recipes", {"summary": s, "runs": runs, "settings": {"seeds": [42, 43]},
                                            "partial": True})
    assert "| `recipes/a.yaml` | 2 | 89.00% ± 1.41 | 82.00% ± 2.83 | 98.9% / 102.5% | 98.9% |" in page
    assert "**partial**" in page and "| `b` | 42 | 50.00% | 40.00% | 1,000 |" in page


def test_an_unknown_recipe_is_one_line_naming_the_shipped_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--recipes", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no recipe recipes/nope.yaml" in err and "clip_small" in err


@pytest.mark.slow
def test_quick_run_writes_the_json_and_a_rerun_resumes(tmp_path):
    out, work = tmp_path / "recipes.json", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    argv = [sys.executable, str(ROOT / "benchmarks" / "recipes.py"), "--quick", "--recipes", "clip_small",
            "--seeds", "42", "43", "--work", str(work), "--json", str(out)]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["partial"] is False and [run["seed"] for run in data["runs"]] == [42, 43]
    assert [st["stage"] for st in data["runs"][0]["stages"]] == ["01-distill", "02-quantize"]
    assert data["runs"][1]["stages_run"][0]["distill"]["seed"] == 43
    final = data["runs"][0]["stages"][-1]
    assert final["effective"]["quantization"]["bits"] == 4 and final["after"]["size_bytes"] > 0
    assert data["summary"]["clip_small"]["teacher_seen"] > 0  # the teacher, measured by the first stage
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0 and r.stdout.count("nothing to do") == 2, r.stdout[-3000:]
