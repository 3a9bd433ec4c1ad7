"""``PruningConfig`` and ``prune_model``: one verb that applies a config, like PEFT's ``get_peft_model``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import VlmcompressError
from ..io import JsonConfig

logger = logging.getLogger(__name__)
CONFIG_FILENAME = "pruning_config.json"
#: the criteria importance.py registers (``importance.IMPORTANCE``'s keys; a test holds them equal), named here so that
#: the config and the ``prune`` parser load without torch
IMPORTANCE_NAMES = ("ablation", "fisher", "taylor", "magnitude", "random")
SCOPES = ("per_layer", "global")
LAYER_STRATEGIES = ("every_k", "block_influence")
#: calibration samples each data-driven importance scores on when none is given (importance.py's classes read them)
CALIBRATION_SAMPLES = {"taylor": 256, "fisher": 256, "ablation": 512}
#: ablation's head scores cost a forward pass per head and batch: on a model with many heads its default sample count
#: is cut so that heads x samples stays within this
HEAD_SAMPLE_BUDGET = 32_768


def describe_calibration_samples() -> str:
    """'256 for taylor and fisher; 512 for ablation', from CALIBRATION_SAMPLES (the CLI's help)."""
    by_count: dict = {}
    for name, count in CALIBRATION_SAMPLES.items():
        by_count.setdefault(count, []).append(name)
    return "; ".join(f"{count} for {' and '.join(names)}" for count, names in by_count.items())


@dataclass
class PruningConfig(JsonConfig):
    """What to remove. Ratios are fractions of units; plans name units in the model's current numbering.

    Order of application: layers, then heads, then MLP neurons, then the hidden width (importance is scored after
    layers are dropped).

    ``hidden_ratio`` slices each tower's hidden width (the residual stream) with as many heads in every layer, so
    ``head_dim`` is kept and the result is the stock class's shape: the TinyCLIP/DistilBERT-style narrow student
    that inherits its weights (heads by ``importance``, the width's dimensions by weight magnitude; CLIP).
    """

    #: towers whose layers and MLP neurons may go (None: every tower the model has)
    towers: list | None = None
    #: attention-head sites whose heads may go: a tower's self-attention ("vision", "text", ...) and BLIP's
    #: cross-attention ("text_cross", "text_decoder_cross"). None: every head site of ``towers``
    head_sites: list | None = None
    #: how heads and neurons are ranked: "ablation" (heads removed one at a time, scored by the output KL; neurons
    #: by taylor: the best measured on the evidence page), "taylor", "magnitude" or "random"
    importance: str = "ablation"
    head_ratio: float = 0.0
    head_scope: str = "per_layer"
    head_plan: dict | None = None
    mlp_ratio: float = 0.0
    mlp_scope: str = "per_layer"
    mlp_plan: dict | None = None
    hidden_ratio: float = 0.0
    drop_layers: dict | None = None
    layer_strategy: str | None = None
    keep_every: int | None = None
    remove_layers: dict | None = None
    #: calibration samples for data-driven importance (None: the importance's own default: 256 for taylor and fisher,
    #: 512 for ablation, fewer on a model with over 64 heads: ``importance.default_samples``)
    calibration_samples: int | None = None
    calibration_batch_size: int = 32
    seed: int = 0

    filename = CONFIG_FILENAME
    kind = "pruning"
    command = "prune"

    def effective(self) -> dict:
        """``to_dict()`` with the calibration size the importance falls back to when none is given (ablation on a model
        with over 64 heads scores on fewer: the pruning step records the count used, ``calibration_samples``)."""
        from . import importance as imp

        out = self.to_dict()
        if out["calibration_samples"] is None:
            out["calibration_samples"] = getattr(imp.IMPORTANCE.get(self.importance), "default_samples", None)
        return out

    def __post_init__(self):
        # files and calls from before head sites had their own key named them under towers
        from ..adapters import known_head_sites, known_tower_names

        sites = [t for t in self.towers or () if t in known_head_sites() and t not in known_tower_names()]
        if sites:
            self.towers = [t for t in self.towers if t not in sites]
            self.head_sites = list(dict.fromkeys([*(self.head_sites or []), *sites]))
        self.validate()

    def validate(self) -> None:
        if isinstance(self.importance, str) and self.importance not in IMPORTANCE_NAMES:
            raise VlmcompressError(f"importance must be one of {', '.join(IMPORTANCE_NAMES)}, got {self.importance!r}")
        for name in ("calibration_samples", "calibration_batch_size"):
            if name == "calibration_samples" and self.calibration_samples is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise VlmcompressError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        for name in ("head_scope", "mlp_scope"):
            if getattr(self, name) not in SCOPES:
                raise VlmcompressError(f"{name} must be one of {', '.join(SCOPES)}, got {getattr(self, name)!r}")
        if self.layer_strategy is not None and self.layer_strategy not in LAYER_STRATEGIES:
            raise VlmcompressError(f"layer_strategy must be one of {', '.join(LAYER_STRATEGIES)}, "
                                   f"got {self.layer_strategy!r}")
        if self.keep_every is not None and self.keep_every < 1:
            raise VlmcompressError(f"keep_every must be at least 1, got {self.keep_every}")
        for name in ("head_ratio", "mlp_ratio", "hidden_ratio"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise VlmcompressError(f"{name} is a fraction in [0, 1), got {value}")
        if self.hidden_ratio and (self.head_ratio or self.head_plan):
            raise VlmcompressError("hidden_ratio removes heads with the width (head_dim stays): leave head_ratio and "
                                   "head_plan unset")
        if self.head_ratio and self.head_plan:
            raise VlmcompressError("give either head_ratio or head_plan, not both")
        if self.mlp_ratio and self.mlp_plan:
            raise VlmcompressError("give either mlp_ratio or mlp_plan, not both")
        if self.drop_layers and self.layer_strategy:
            raise VlmcompressError("give either drop_layers or layer_strategy, not both")
        if not (self.head_ratio or self.head_plan or self.mlp_ratio or self.mlp_plan or self.drop_layers
                or self.layer_strategy or self.hidden_ratio):
            raise VlmcompressError("nothing to prune: set a head, MLP, hidden-width or layer ratio, plan or strategy")


def _needs_scores(config):
    return bool(config.head_ratio or config.mlp_ratio or config.hidden_ratio)


def needs_calibration(config: PruningConfig, scores=None) -> bool:
    """Whether ``prune_model(config, scores=scores)`` reads calibration data: block-influence layer selection, or units
    chosen by ratio (a config never has both a ratio and a plan) with a data-driven importance and no given scores."""
    from . import importance as imp

    return config.layer_strategy == "block_influence" or (
        scores is None and _needs_scores(config) and imp.get_importance(config.importance).needs_data)


def require_calibration(config: PruningConfig, model: str, flag: str, scores=None) -> None:
    """A user's model pruned with no calibration data: one line asking for data from its domain (the embedded digits
    calibrate the embedded teachers only), or naming the data-free importance."""
    if needs_calibration(config, scores):
        what = "block_influence layer selection" if config.layer_strategy == "block_influence" else \
            f"{config.importance} importance"
        raise VlmcompressError(f"pruning {model} by {what} needs calibration data from its own domain: give {flag} "
                               "(images with captions), or use --importance magnitude (no data); the embedded digits "
                               "calibrate only the embedded teachers")


def _check_hidden(adapter, config, towers, sites) -> list:
    """The head sites a hidden_ratio slices with the width (each tower's own self-attention), checked before any
    change: the family must declare its residual stream, and each tower's layers must have equal head counts."""
    if not config.hidden_ratio:
        return []
    site_tower = adapter.head_sites()
    for tower in towers:
        adapter.hidden_parts(tower)  # a family without them: one clear error, nothing changed
        counts = {adapter.attention(layer).num_heads for layer in adapter.layers(tower)}
        if len(counts) != 1:
            raise VlmcompressError(f"hidden_ratio needs the same number of heads in every {tower} layer, not "
                                   f"{sorted(counts)}: slice the width of a model whose heads were not pruned per layer")
    return [t for t in towers if site_tower.get(t) == t]


def _check_scores(adapter, scores, towers, sites):
    site_tower = adapter.head_sites()
    for kind, names, count in (("heads", sites, lambda site, layer: adapter.head_parts(site, layer).num_heads),
                               ("neurons", towers, lambda tower, layer: adapter.mlp(layer).num_neurons)):
        for tower in names:
            layers = adapter.layers(site_tower[tower])
            given = (scores.get(kind) or {}).get(tower)
            if given is None:
                continue
            shape = [len(given[i]) if i in given else None for i in range(len(layers))]
            if len(given) != len(layers) or shape != [count(tower, layer) for layer in layers]:
                raise VlmcompressError(
                    f"the {kind} scores do not match this model's {tower} tower ({len(layers)} layers after any "
                    "layers were dropped): score the model in the state it is pruned from"
                )


def resolve_targets(adapter, config: PruningConfig) -> tuple[list, list]:
    """(towers, head sites) of this model that ``config`` names; a name the model does not have is an error."""
    present = list(adapter.towers())
    sites = adapter.head_sites()  # site -> the tower whose layers hold it
    towers = present if config.towers is None else list(config.towers)
    missing = [t for t in towers if t not in present]
    if missing:
        raise VlmcompressError(f"unknown tower(s) {', '.join(sorted(missing))}: this model has {', '.join(present)}")
    if config.head_sites is None:
        return towers, [s for s, t in sites.items() if t in towers]
    missing = [s for s in config.head_sites if s not in sites]
    if missing:
        raise VlmcompressError(f"unknown head site(s) {', '.join(sorted(missing))}: this model has {', '.join(sites)}")
    return towers, list(config.head_sites)


def prune_model(model, config: PruningConfig, processor=None, *, dataset=None, scores=None, on_scores=None) -> list[dict]:
    """Prune ``model`` in place by ``config``; returns the report steps (original numbering).

    ``scores`` (from an importance object or ``load_scores``) skips scoring; they must describe the model after
    its layers are dropped. Otherwise they are computed on ``config.calibration_samples`` samples of ``dataset``
    (default: the embedded training split) and passed to ``on_scores`` (e.g. ``save_scores``).
    """
    from ..adapters import get_adapter
    from . import importance as imp
    from .structural import prune_heads, prune_hidden, prune_layers, prune_mlp

    config.validate()
    adapter = get_adapter(model)
    towers, asked = resolve_targets(adapter, config)
    batches = None

    def get_batches():
        nonlocal batches
        if batches is None:
            if processor is None:
                raise VlmcompressError("calibration needs the model's processor")
            samples = config.calibration_samples
            if samples is None:
                samples = imp.default_samples(config.importance, model, config.calibration_batch_size,
                                              score_heads=bool(config.head_ratio or config.hidden_ratio))
                full = getattr(imp.IMPORTANCE.get(config.importance), "default_samples", samples)
                if samples < full:
                    heads = sum(attn.num_heads for _, _, attn in adapter.head_units())
                    logger.warning(f"{config.importance} importance: {heads} heads, so their scores use {samples} "
                                   f"calibration samples, not {full}, to keep the cost (a forward pass per head and "
                                   f"batch) bounded; --calibration-samples {full} (recipes: calibration_samples) "
                                   "scores on more, for longer")
            batches = imp.calibration_batches(processor, dataset, num_samples=samples,
                                              batch_size=config.calibration_batch_size, seed=config.seed,
                                              text_padding=adapter.text_padding)
        return batches

    hidden_sites = _check_hidden(adapter, config, towers, asked)
    steps = []
    layer_plan = config.drop_layers
    if config.layer_strategy:
        layer_plan = imp.select_layers(
            model, config.layer_strategy, keep_every=config.keep_every, num_remove=config.remove_layers,
            batches=get_batches() if config.layer_strategy == "block_influence" else None, towers=towers,
        )
    if layer_plan:
        step = prune_layers(model, {t: v for t, v in layer_plan.items() if v})
        step["strategy"] = config.layer_strategy or "explicit"
        steps.append(step)

    if _needs_scores(config) and scores is None:
        criterion = imp.get_importance(config.importance)
        if isinstance(criterion, imp.RandomImportance):
            criterion.seed = config.seed
        if isinstance(criterion, imp.AblationImportance):
            criterion.score_heads = bool(config.head_ratio or config.hidden_ratio)  # else only neurons are used
        scores = criterion(model, get_batches() if criterion.needs_data else None)
        if on_scores is not None:
            on_scores(scores)
    elif scores is not None:
        _check_scores(adapter, scores, towers, asked)
    heads = ((config.head_plan, config.head_ratio, config.head_scope, imp.select_heads, prune_heads, asked)
             if not config.hidden_ratio else
             (None, config.hidden_ratio, "per_layer", imp.select_heads, prune_heads, hidden_sites))
    for plan, ratio, scope, select, prune, names in (
        heads, (config.mlp_plan, config.mlp_ratio, config.mlp_scope, imp.select_neurons, prune_mlp, towers),
    ):
        plan = plan or (select(scores, ratio, scope, names) if ratio else None)
        if plan:
            step = prune(model, plan)
            step.update(importance=config.importance if ratio else "explicit", ratio=ratio or None,
                        scope=scope if ratio else None)
            if ratio and batches is not None:  # the samples the scores came from (ablation's default depends on the model)
                step["calibration_samples"] = sum(len(b["input_ids"]) for b in batches)
            steps.append(step)
    if config.hidden_ratio:
        keep = {}
        for tower in towers:
            attn = adapter.attention(adapter.layers(tower)[0])
            keep[tower] = attn.num_heads * attn.head_dim  # the width the kept heads fill: head_dim stays
        plan = imp.select_hidden(imp.hidden_magnitude(model, towers), keep)
        if plan:
            step = prune_hidden(model, plan)
            step.update(importance="magnitude", ratio=config.hidden_ratio)
            steps.append(step)
    return steps
