"""What every benchmark script records beside its figures (the machine, the thread policy, the settings) and the
formatting every page shares (``pct``, ``table``).

Nothing here measures a model; it only reads what the machine and the process say about themselves.
"""

from __future__ import annotations

import os
import platform
import sys


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` is empty on most Linux systems)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> str:
    """CPU model and core count, e.g. ``AMD EPYC (2 cores visible, shared machine)``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model()} ({cores} cores visible to the process, {platform.machine()})"


def refuse_active_wait_policy(script: str) -> None:
    """Exit with one line when OMP_WAIT_POLICY=ACTIVE: spinning OpenMP threads take the cores from everything else
    and make the latency figures meaningless (vlmcompress sets it only for training processes)."""
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE":
        sys.exit(f"{script}: OMP_WAIT_POLICY=ACTIVE is set; latency benchmarks refuse to run with spinning OpenMP "
                 "threads (unset it, or set PASSIVE)")


def environment() -> dict:
    """``vlmcompress.report.environment()`` (device, threads, versions) as the report files record it."""
    from vlmcompress.report import environment as report_environment

    return report_environment()


NOT_MEASURED = "not measured"


def missing(value) -> bool:
    """None or NaN: a figure that was not measured."""
    return value is None or (isinstance(value, float) and value != value)


def pct(value, digits: int = 1) -> str:
    """A fraction as a percentage on a page."""
    return NOT_MEASURED if missing(value) else f"{100 * value:.{digits}f}%"


def mean_sd(mean, sd, digits: int = 1, scale: float = 100.0, unit: str = "%") -> str:
    """A mean over seeds and its sd on a page, the one format of every page: '88.4% ± 0.4' (a fraction, in points), or
    with ``scale=1, unit=""`` a plain figure such as seconds: '1030 ± 449'. An sd of None (one seed) shows the mean."""
    if missing(mean):
        return NOT_MEASURED
    return f"{scale * mean:.{digits}f}{unit}" + ("" if sd is None else f" ± {scale * sd:.{digits}f}")


#: the distill command's former default loss, written out: the similarity KL at a fixed T=3 with the embedding term and
#: no hard targets (benchmarks/run.py's rows and benchmarks/real_size.py's distillation step measured with it)
SIMILARITY_KL_EMBEDDING = {"logit_weight": 1.0, "temperature": 3.0, "temperature_end": None, "embedding_weight": 1.0,
                           "contrastive_weight": 0.0}


#: options added after results were recorded, each with the value that runs as before it existed: a result that lacks
#: one ran with that value, so the option at that value is no reason to re-run it (at any other value, or with another
#: default, it is)
ADDED_LATER = {"temperature_end": None, "icl_weight": 0.0, "text_weight": 0.0, "freeze_towers": None, "dtype": None}


#: a distillation loss's own settings, each with the weights of the terms that read it: with all of them 0 the setting
#: is never read (the similarity KL's temperature without the KL; the embedding loss's form, which the embedding term
#: and the unpaired-text term both use, without either; ...); a weight a result lacks is its ADDED_LATER value
UNUSED_WITHOUT = {"temperature": ("logit_weight",), "temperature_end": ("logit_weight",),
                  "embedding_loss": ("embedding_weight", "text_weight"), "hidden_loss": ("hidden_weight",),
                  "token_temperature": ("token_weight",), "text_batch_size": ("text_weight",)}


def in_effect(settings):
    """Settings without those that cannot have changed the run: a head scope where no heads were removed by a ratio,
    an MLP scope where no neurons were (a changed default of either is no reason to re-run what never used it), a
    loss's own setting where its weight is 0 (UNUSED_WITHOUT), and an option added later (ADDED_LATER) at the value
    that behaves as before it existed. Two results whose settings are equal in effect ran the same computation
    (tests/test_staleness.py, benchmarks/run.py --reuse)."""
    if isinstance(settings, list):
        return [in_effect(s) for s in settings]
    if not isinstance(settings, dict):
        return settings
    out = {k: in_effect(v) for k, v in settings.items() if not (k in ADDED_LATER and v == ADDED_LATER[k])}
    if "head_scope" in out and not (out.get("head_ratio") and not out.get("hidden_ratio")):
        out.pop("head_scope")
    if "mlp_scope" in out and not out.get("mlp_ratio"):
        out.pop("mlp_scope")
    for option, weights in UNUSED_WITHOUT.items():
        if option in out and all(w in settings or w in ADDED_LATER for w in weights) and not any(
                settings.get(w, ADDED_LATER.get(w)) for w in weights):
            out.pop(option)
    return out


def recipe_effective(recipe: dict) -> list:
    """Each stage's {kind: effective settings} of a recipe (a dict) as today's code resolves it, the library's
    defaults filled in (None: a planned or export stage, which has no method config)."""
    from vlmcompress.workflows.recipe import recipe_from_dict, stage_configs

    parsed = recipe_from_dict(recipe)
    out = []
    for stage in parsed.stages:
        config = None if stage.planned or "target" in stage.options else stage_configs(
            stage, parsed.family, first=stage.index == 1)
        if hasattr(config, "with_texts"):  # a distill stage: the text term's default follows the recipe's texts
            config.with_texts(bool(parsed.data.get("texts")))
        out.append(None if config is None else {config.kind: config.effective()})
    return out


def stages_current(stages: list, recipe: dict, effective: list | None = None) -> bool | None:
    """Whether a result's own stages (``inherited`` ones aside) ran with the settings today's code resolves ``recipe``
    to (``effective``: that resolution, where the caller has it already): every stage's recorded effective settings
    equal in effect to today's (a planned or export stage, None today, has nothing to compare). None: no stage
    recorded them (a result from before stages kept them), so the caller decides on what else it has
    (tests/test_staleness.py, benchmarks/run.py --reuse)."""
    own = [st for st in stages if not st.get("inherited")]
    if not any(st.get("effective") for st in own):
        return None
    return all(want is None or in_effect(st.get("effective")) == in_effect(want)
               for st, want in zip(own, effective if effective is not None else recipe_effective(recipe)))


def table(header: list, rows: list, align: list[str] | None = None) -> list[str]:
    """A Markdown table: the first column left-aligned and the rest right-aligned unless ``align`` ("l"/"r" per column)
    says otherwise; cells are shown with ``str`` and their pipes escaped."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    out += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out
