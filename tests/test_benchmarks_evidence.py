"""benchmarks/run.py --quick runs every row of the evidence suite end to end and writes its JSON, page and plot (the
slow tier); the fast tier checks that every row of every suite, quick and full, is a valid recipe."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    """benchmarks/run.py as a module (the repository root is on pytest's pythonpath)."""
    import benchmarks.run

    return benchmarks.run


def _quick(suite: str, tmp_path):
    """``benchmarks/run.py --quick --suite SUITE`` in a fresh process (no OMP_WAIT_POLICY: it times models): the
    command, its result, the JSON it wrote, and the out and work folders."""
    out, work = tmp_path / "out", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--suite", suite, "--out", str(out),
           "--work", str(work), "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    return cmd, env, json.loads((out / f"evidence_{suite}.json").read_text()), out, work


@pytest.mark.slow
def test_quick_run_writes_every_row_the_page_and_the_plot(tmp_path):
    cmd, env, data, out, work = _quick("clip", tmp_path)
    bench = _bench()

    from vlmcompress.loading import resolve_model_path

    teacher_config = json.loads((Path(resolve_model_path(None)) / "config.json").read_text())
    expected = [row["name"] for row in bench.clip_rows(data["settings"], teacher_config)]
    assert [row["name"] for row in data["rows"]] == expected
    assert data["settings"]["quick"] is True and data["latency"]["_settings"]["threads"] == 1
    teacher = data["teacher"]
    for row in data["rows"]:
        for stage in row["stages"]:
            after = stage["after"]
            assert after["size_bytes"] > 0 and 0 <= after["zero_shot_accuracy"] <= 1, (row["name"], stage["name"])
        assert data["latency"][row["name"]]["ratio"] > 0
    # what the rows are made of really differs: random students have the inherited one's size, quantized are smaller
    rows = {row["name"]: row for row in data["rows"]}
    size = lambda name: rows[name]["stages"][-1]["after"]["size_bytes"]  # noqa: E731
    params = lambda name: rows[name]["stages"][-1]["after"]["params"]  # noqa: E731
    assert params("(iii) random init, contrastive only") == params("(i) inherited + distillation")
    assert params("(i) inherited + distillation") < teacher["params"]
    assert params("narrow: random init, contrastive only") == params("narrow: inherited + distillation")
    assert params("narrow: inherited + distillation") <= 0.25 * teacher["params"]
    assert size("heads/MLP -50% + distill + int8") < rows["heads/MLP -50% + distill + nf4"]["stages"][1]["after"]["size_bytes"]
    assert size("heads/MLP -50% + distill + nf4") < size("heads/MLP -50% + distill + int8")
    assert rows["heads/MLP -50% + distill + int8"]["stages"][0].get("inherited") is True
    # a quick run proves that rows run, never that a target is met
    assert data["targets"] and all(t["met"] is None for t in data["targets"])
    page = (out / "evidence_clip.md").read_text()
    assert "from a --quick run" in page and "## Pareto" in page and "evidence_clip.png" in page
    assert (out / "evidence_clip.png").read_bytes()[:4] == b"\x89PNG"
    by_name = {p["name"]: p for p in data["pareto"]}
    frontier = [by_name[name] for name in data["frontier"]]  # smallest first
    assert frontier and min(p["size_bytes"] for p in data["pareto"]) == frontier[0]["size_bytes"]
    assert [a["use"] for a in data["advice"]] == [p["name"] for p in sorted(frontier, key=lambda p: -p["size_bytes"])]

    # the work folder resumes: a second run trains nothing and writes the same rows
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("done earlier") == len(expected)


@pytest.mark.slow
def test_quick_blip_suite_writes_every_row_with_caption_accuracy(tmp_path):
    cmd, env, data, out, work = _quick("blip", tmp_path)
    bench = _bench()

    from vlmcompress.embedded.blip_captioner import blip_teacher_path

    teacher_config = json.loads((Path(blip_teacher_path()) / "config.json").read_text())
    assert [row["name"] for row in data["rows"]] == [row["name"] for row in bench.blip_rows(data["settings"], teacher_config)]
    assert data["accuracy"] == "caption_accuracy" and data["teacher"]["caption_accuracy"] > 0
    rows = {row["name"]: row for row in data["rows"]}
    for row in data["rows"]:
        assert row["recipe"]["family"] == "blip"
        assert all(0 <= st["after"]["caption_accuracy"] <= 1 for st in row["stages"]), row["name"]
    params = lambda name: rows[name]["stages"][-1]["after"]["params"]  # noqa: E731
    assert params("(iii) random init, caption loss only") == params("(i) inherited + distillation") < data["teacher"]["params"]
    losses = rows["(ii) inherited, caption loss only"]["stages"][0]["training"]["losses"]
    assert losses.get("token", 0) == 0 and losses.get("caption")
    assert data["targets"] and all(t["met"] is None for t in data["targets"])
    page = (out / "evidence_blip.md").read_text()
    assert "BLIP captioner" in page and "caption accuracy" in page and "retrieval" in page


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "full"])
@pytest.mark.parametrize("suite", ["clip", "clip_small", "blip", "blip_retrieval", "generalization", "generalization_long"])
def test_every_row_of_every_suite_is_a_valid_recipe(suite, quick, tmp_path):
    """The fast tier's stand-in for running the suites: each row's recipe, as the suite would run it, passes the
    recipe checks ``vlmcompress compress`` makes before any work (stage options, their order, every stage config)."""
    from vlmcompress.embedded.blip_captioner import blip_teacher_path
    from vlmcompress.loading import resolve_model_path
    from vlmcompress.workflows.recipe import recipe_from_dict

    bench = _bench()
    teacher = blip_teacher_path() if suite.startswith("blip") else resolve_model_path(None)
    teacher_config = json.loads((Path(teacher) / "config.json").read_text())
    s = dict(bench.QUICK if quick else bench.FULL, quick=quick, accuracy=bench.ACCURACY[suite],
             family=bench.RECIPE_FAMILY[suite])
    if suite in bench.TEACHER_RECIPES:
        s["teacher_dir"] = str(tmp_path / bench.TEACHER_DIR)
    rows = bench.ROWS[suite](s, teacher_config)
    assert len({row["name"] for row in rows}) == len(rows), "row names are their keys: unique"
    assert len({bench.slug(row["name"]) for row in rows}) == len(rows), "each row gets its own folder"
    done = {}
    for row in rows:
        if row.get("base"):
            assert row["base"][0] in done, f"{row['name']} starts from a row that runs after it"
        recipe = recipe_from_dict(bench.row_recipe(row, s, tmp_path, done))
        assert [st.kind for st in recipe.stages] == [next(iter(st)) for st in row["stages"]]
        done[row["name"]] = {"stages": [{"folder": str(tmp_path / bench.slug(row["name"]) / f"{i:02d}")}
                                        for i in range(1, len(row["stages"]) + 1)]}


def test_frontier_and_advice_from_points():
    bench = _bench()

    points = [{"name": "teacher", "size_bytes": 100, "kept": 1.0, "latency_ratio": 1.0},
              {"name": "a", "size_bytes": 50, "kept": 0.99, "latency_ratio": 0.6},
              {"name": "b", "size_bytes": 60, "kept": 0.95, "latency_ratio": 0.7},  # dominated by a
              {"name": "c", "size_bytes": 10, "kept": 0.90, "latency_ratio": 0.3}]
    front = bench.frontier(points)
    assert [p["name"] for p in front] == ["c", "a", "teacher"]
    advice = bench.advice(front, 100)
    assert [a["use"] for a in advice] == ["teacher", "a", "c"]
    assert advice[-1]["if_you_need"] == "<= 10.0% of the teacher's bytes"


def test_pareto_points_are_judged_on_the_worse_of_seen_and_held_out():
    """A larger row that keeps more on the worse of seen and held-out is on the frontier, though a smaller one wins seen."""
    bench = _bench()
    teacher = {"size_bytes": 100, "zero_shot_accuracy": 0.8, "zero_shot_accuracy_heldout": 0.5}

    def row(name, size, seen, held):
        return {"name": name, "section": "x", "stages": [{"after": {"size_bytes": size, "zero_shot_accuracy": seen,
                                                                    "zero_shot_accuracy_heldout": held}}]}

    rows = [row("seen-only", 40, 0.79, 0.30), row("both", 50, 0.76, 0.49)]
    points = bench.pareto_points(rows, teacher, {})
    by_name = {p["name"]: p for p in points}
    assert by_name["seen-only"]["kept"] == pytest.approx(0.6) and by_name["seen-only"]["kept_seen"] == pytest.approx(0.9875)
    assert by_name["both"]["kept"] == pytest.approx(0.95) and by_name["both"]["kept_heldout"] == pytest.approx(0.98)
    assert [p["name"] for p in bench.frontier(points)] == ["seen-only", "both", "teacher"]
    advice = bench.advice(bench.frontier(points), 100)
    assert advice[1]["use"] == "both" and advice[1]["kept_seen"] == pytest.approx(0.95)


def test_loading_the_benchmark_leaves_the_onnx_package_importable():
    _bench()
    import importlib.util

    assert str(ROOT / "benchmarks") not in sys.path
    assert not (ROOT / "benchmarks" / "onnx.py").exists()  # a script named onnx.py would shadow the onnx package
    assert "site-packages" in importlib.util.find_spec("onnx").origin


@pytest.mark.slow
def test_quick_blip_retrieval_suite_trains_its_teacher_and_distills_itm(tmp_path):
    cmd, env, data, out, work = _quick("blip_retrieval", tmp_path)
    bench = _bench()

    from vlmcompress.embedded.blip_captioner import blip_teacher_path

    teacher_config = json.loads((Path(blip_teacher_path()) / "config.json").read_text())
    assert [row["name"] for row in data["rows"]] == [row["name"] for row in bench.retrieval_rows(data["settings"], teacher_config)]
    saved = json.loads((work / "blip_retrieval" / "teacher" / "config.json").read_text())
    assert saved["architectures"] == ["BlipForImageTextRetrieval"]
    assert data["teacher_training"]["steps"] == data["settings"]["retrieval_teacher_steps"]
    assert data["accuracy"] == "zero_shot_accuracy" and 0 <= data["teacher"]["zero_shot_accuracy"] <= 1
    rows = {row["name"]: row for row in data["rows"]}
    for row in data["rows"]:
        assert row["recipe"]["family"] == "clip" and row["recipe"]["model"] == str(work / "blip_retrieval" / "teacher")
    first = rows["(i) inherited + distillation"]["stages"][0]["training"]
    assert first["losses"]["itm"] == 1.0 and "itm" in first["last_terms"]
    assert "itm" not in (rows["inherited, ITC distillation without the ITM term"]["stages"][0]["training"]["last_terms"])
    assert data["targets"] and all(t["met"] is None for t in data["targets"])
    page = (out / "evidence_blip_retrieval.md").read_text()
    assert "BLIP retrieval" in page and "ITM KL to the teacher" in page


@pytest.mark.slow
def test_quick_clip_small_suite_quantizes_one_student_four_ways(tmp_path):
    cmd, env, data, out, work = _quick("clip_small", tmp_path)
    rows = {row["name"]: row for row in data["rows"]}
    nf4, smallest = rows["heads/MLP -50% + distill + nf4"], rows["heads/MLP -50% + distill + nf4 (all Linears, the rest in bf16)"]
    assert smallest["stages"][1]["inherited"] and smallest["stages"][1]["folder"] == nf4["stages"][1]["folder"]
    assert smallest["stages"][-1]["options"]["dtype"] == "bfloat16"
    assert smallest["stages"][-1]["after"]["size_bytes"] < rows["heads/MLP -50% + distill + nf4 (all Linears)"]["stages"][-1]["after"]["size_bytes"] < nf4["stages"][-1]["after"]["size_bytes"]
    assert data["latency"][smallest["name"]]["dtype"] == "bfloat16" and data["latency"]["teacher"]["dtype"] == "float32"
    assert [t["target"] for t in data["targets"]] == [
        "a checkpoint <= 10% of the teacher's bytes keeping >= 95% of its accuracy, seen and held-out"]
    page = (out / "evidence_clip_small.md").read_text()
    assert "10% tier" in page and "## Distillation: four students" not in page and "## Combined chains" in page


@pytest.mark.slow
def test_quick_generalization_suite_runs_every_variant_once_per_seed(tmp_path):
    cmd, env, data, out, work = _quick("generalization", tmp_path)
    bench = _bench()
    sections = [row["section"] for row in data["rows"]]
    quick_seeds = bench.QUICK["seeds"]  # a quick run: two seeds for the first two variants of each list, one for
    assert bench.QUICK["seeded_variants"] == 2  # the others (a full run: bench.SEEDS for every variant)
    assert sections.count("generalization") == len(bench.GENERALIZATION) + 2 * (len(quick_seeds) - 1)
    prunings = sum(len(importances) for _, importances in bench.GENERALIZATION_PRUNINGS) + 5  # + the candidates'
    assert sections.count("generalization-pruning") == prunings + 2 * (len(quick_seeds) - 1)  # recovery, global
    for variant, want in ((bench.GENERALIZATION[0][0], quick_seeds), (bench.GENERALIZATION[1][0], quick_seeds),
                          (bench.GENERALIZATION[2][0], quick_seeds[:1])):
        seeds = {row["seed"]: row["stages"][0]["training"] for row in data["rows"] if row["variant"] == variant}
        assert sorted(seeds) == list(want)
    assert len(data["targets"]) == 24 and all(t["met"] is None for t in data["targets"])
    targets = [t["target"] for t in data["targets"]]  # the candidate defaults against contrastive-only, their recovery
    # each candidate against contrastive-only at 400 steps; at 900 steps its kept and its comparison with
    # contrastive-only (the label-set candidate with and without contrastive: two prefixes)
    assert sum(t.startswith(f"candidate default ({bench.KL_T1_PROMPTS}") for t in targets) == 6
    assert sum(t.startswith(f"candidate default ({bench.KL_CONTRASTIVE}") for t in targets) == 3
    # the default with the label set as unpaired texts against contrastive-only at 400 and 900 steps, its kept at 900
    assert sum(t.startswith("default distillation with the label set") for t in targets) == 3
    for name in (bench.FORMER_DEFAULT, bench.KL_T1_PROMPTS, bench.KL_CONTRASTIVE, bench.DEFAULT_WITH_TEXTS):
        assert any(f"recovered by {name}" in t for t in targets)
    # the default against the former default, at 400 and 900 steps
    assert sum(t.startswith(f"default distillation against {bench.FORMER_DEFAULT}") for t in targets) == 2
    page = (out / "evidence_generalization.md").read_text()
    assert "## Generalization: seen and held-out over 2 seeds" in page and "Seed-to-seed noise" in page
    assert "## Pruning by importance over 2 seeds" in page and "heads -50% (fisher)" in page
    assert page.startswith("# The evidence: CLIP distillation that keeps held-out accuracy (2 seeds)")


@pytest.mark.slow
def test_quick_generalization_long_suite_runs_its_rows_and_targets(tmp_path):
    """The longer schedules (1800 steps), the narrow tier and ablation's calibration size, each over the seeds."""
    cmd, env, data, out, work = _quick("generalization_long", tmp_path)
    bench = _bench()
    variants = {row["variant"] for row in data["rows"]}
    assert {v for v, *_ in bench.GENERALIZATION_LONG} <= variants
    assert f"heads -50% (ablation, {bench.ABLATION_SAMPLES} samples)" in variants
    seeds = len(bench.QUICK["seeds"])  # a quick run's: for the first two variants of each list, one for the rest
    assert len(data["rows"]) == len(bench.GENERALIZATION_LONG) + 3 + 2 * 2 * (seeds - 1)
    sampled = [r for r in data["rows"] if r.get("samples")]
    assert sampled and all(r["stages"][0]["options"]["calibration_samples"] == bench.ABLATION_SAMPLES for r in sampled)
    targets = " | ".join(t["target"] for t in data["targets"])
    assert "narrow student" in targets and f"ablation on {bench.ABLATION_SAMPLES} calibration samples" in targets
    assert f"candidate default ({bench.KL_T1_PROMPTS}, not the default yet)" in targets
    assert f"candidate default ({bench.KL_T1_PROMPTS} + contrastive, not the default yet)" in targets
    assert "default distillation with the label set as unpaired texts (the text term on) beats" in targets
    wise = data["wise_ft"]
    spec = bench.WISE_FT["generalization_long"]
    blended = [r for r in data["rows"] if r["variant"] in spec["variants"]]  # each seed a variant ran on
    assert len(wise["rows"]) == len(blended) * len(spec["alphas"]) and len(blended) >= len(spec["variants"])
    assert {r["interpolates"] for r in wise["rows"]} == set(spec["variants"])
    assert all(r["stages"][0]["after"]["zero_shot_accuracy"] is not None for r in wise["rows"])
    page = (out / "evidence_generalization_long.md").read_text()
    assert "## Generalization: seen and held-out over 2 seeds" in page and "## Pruning by importance" in page
    assert "## WiSE-FT" in page and "the best on the worse of the two kept is alpha" in page
    from test_staleness import evidence_problem

    # every stage recorded the settings it ran with, and they are what today's code resolves the row to
    assert all(st.get("effective") for row in data["rows"] for st in row["stages"])
    assert evidence_problem(data, "the quick run") is None
    assert all(row["hardware"] for row in data["rows"])  # each row names its machine

    # --reuse: a second run takes every row from the first run's results (same recipes, same effective settings),
    # trains nothing, and keeps that run's WiSE-FT rows and latency (the first run's folders are gone)
    import shutil

    shutil.rmtree(work)
    again = tmp_path / "again"
    cmd2 = [*cmd[:cmd.index("--out")], "--out", str(again), "--work", str(tmp_path / "work2"), "--threads", "1",
            "--reuse", str(out / "evidence_generalization_long.json")]
    r = subprocess.run(cmd2, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert r.stdout.count("reused: ") == len(data["rows"]) and "done earlier" in r.stdout
    second = json.loads((again / "evidence_generalization_long.json").read_text())
    assert [row["stages"] for row in second["rows"]] == [row["stages"] for row in data["rows"]]
    assert all(row["reused_from"] == {"file": cmd2[-1], "row": row["name"]} for row in second["rows"])
    assert [w["stages"] for w in second["wise_ft"]["rows"]] == [w["stages"] for w in wise["rows"]]
    assert all(second["latency"][row["name"]]["reused"] for row in second["rows"])
    assert "reused rows: " in (again / "evidence_generalization_long.md").read_text()


def test_seed_groups_give_mean_sd_and_the_worse_of_seen_and_held_out():
    bench = _bench()
    teacher = {"zero_shot_accuracy": 0.8, "zero_shot_accuracy_heldout": 0.5}

    def row(variant, seed, seen, held):
        return {"section": "generalization", "variant": variant, "seed": seed, "stages": [{"after": {"zero_shot_accuracy": seen,
                                                                        "zero_shot_accuracy_heldout": held}}]}

    rows = [row("a", 1, 0.78, 0.40), row("a", 2, 0.80, 0.44), row("a", 3, 0.82, 0.42), row("b", 1, 0.70, 0.50),
            row("b", 2, 0.70, 0.50), row("b", 3, 0.70, 0.50)]
    a, b = bench.seed_groups(rows, teacher, "zero_shot_accuracy")
    assert abs(a["seen"] - 0.80) < 1e-9 and abs(a["seen_sd"] - 0.02) < 1e-9 and abs(a["heldout_kept"] - 0.84) < 1e-9
    assert abs(a["worse_kept"] - 0.84) < 1e-9 and abs(b["worse_kept"] - 0.875) < 1e-9 and b["seen_sd"] == 0
    noise = bench.seed_noise([a, b])
    assert abs(noise["seen"] - 100 * 0.02) < 1e-9  # b's seeds agree exactly (sd 0): left out of the pool


def test_committed_evidence_was_measured_with_todays_default_importance():
    """A first staleness guard: every committed result that names the library's default importance was measured with
    today's default; a changed default fails here, naming the files to regenerate."""
    from vlmcompress.pruning.config import PruningConfig

    stale = []
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        recorded = data.get("default_importance") or (data.get("importance_cost") or {}).get("default_importance")
        if recorded is not None and recorded != PruningConfig.importance:
            stale.append(f"{path.relative_to(ROOT)} (measured with {recorded})")
    assert not stale, f"regenerate (the default importance is now {PruningConfig.importance}): " + ", ".join(stale)


def test_every_page_formats_with_the_same_helpers():
    """run.py (evidence pages) and render_pages.py (the others) share _common's pct and table: one behaviour."""
    import benchmarks._common as common
    import benchmarks.render_pages as pages

    bench = _bench()
    assert bench.pct is pages.pct is common.pct and bench.table is pages.table is common.table
    assert common.pct(None) == common.pct(float("nan")) == "not measured" and common.pct(0.9765, 2) == "97.65%"
    assert common.table(["a", "b"], [["x|y", 3]]) == ["| a | b |", "| --- | ---: |", "| x\\|y | 3 |"]


def test_a_row_is_reused_only_with_the_same_recipe_effective_settings_and_a_known_machine(tmp_path):
    """--reuse takes an earlier run's row where the recipe (its folders and method settings aside) and every stage's
    effective settings are today's, and the run named its machine; a changed option or default, or an unknown
    machine, runs the row."""
    from benchmarks._common import recipe_effective

    bench = _bench()
    s = dict(bench.QUICK, quick=True, accuracy="zero_shot_accuracy", family="clip")
    row = bench.seeded_distillations(s, [(bench.KL_CONTRASTIVE, bench.KL_CONTRASTIVE_OPTIONS)])[0]
    recipe = bench.row_recipe(row, s, tmp_path / "today", {})
    latency = {"_settings": {"batch_size": s["latency_batch_size"], "rounds": s["latency_rounds"]}, "old": {"ratio": 0.5}}

    def source(recipe=recipe, effective=None, hardware="Some CPU"):
        old = {"name": "old", "variant": "v", "seed": row["seed"], "recipe": {**recipe, "output_dir": "elsewhere"},
               "seconds": 3.0, "stages": [{"folder": "gone", "effective": effective or recipe_effective(recipe)[0]}]}
        return [{"label": "earlier.json", "rows": [old], "hardware": hardware, "latency": latency, "wise_ft": []}]

    got = bench.reused_row(row, recipe, source(), s)
    assert got["name"] == row["name"] and got["variant"] == row["variant"] and got["hardware"] == "Some CPU"
    assert got["reused_from"] == {"file": "earlier.json", "row": "old"} and got["_latency"] == {"ratio": 0.5}
    other = json.loads(json.dumps(recipe))
    other["stages"][0]["distill"]["temperature_end"] = 2.0
    assert bench.reused_row(row, recipe, source(recipe=other), s) is None  # another option
    stale = json.loads(json.dumps(recipe_effective(recipe)[0]))
    stale["distillation"]["logit_weight"] = 2.0  # as if the default had been another when the row ran
    assert bench.reused_row(row, recipe, source(effective=stale), s) is None
    assert bench.reused_row(row, recipe, source(hardware=None), s) is None
    # a row whose recipe left to the default what today's writes out (the same value) ran the same computation:
    # taken, with today's recipe
    spelled = json.loads(json.dumps(recipe))
    assert spelled["stages"][0]["distill"].pop("logit_weight") == 1.0  # the library's default
    got = bench.reused_row(row, recipe, source(recipe=spelled), s)
    assert got and got["recipe"] == {**recipe, "output_dir": "elsewhere"}
    spelled["stages"][0]["distill"]["max_steps"] += 1  # a training setting: compared as written
    assert bench.reused_row(row, recipe, source(recipe=spelled), s) is None
    assert bench.reused_row(row, {**recipe, "model": "a-folder"}, source(), s) is None  # starts from a row's folder

    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": [{"name": "no recipe"}]}')
    with pytest.raises(SystemExit, match="no rows with their recipes; expected an evidence results file"):
        bench.reuse_sources([bad])
