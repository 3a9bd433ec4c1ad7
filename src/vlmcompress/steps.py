"""Report step kinds, registered like model families.

Every method package declares the steps it writes into ``compression_report.json`` in its own ``steps`` module:
the card's title, how the report checks the step's own fields, the sentences a card shows for it and the papers it
cites. The report, the cards and the citations look a step up here by its ``method`` and never name one
themselves. A new method registers its kind the same way::

    from vlmcompress.steps import Citation, StepKind, register_step_kind

    register_step_kind(StepKind("weight_sharing", "Weight sharing",
                                describe=lambda step, fmt: ([f"groups: {fmt.value(step['groups'])}"], {"groups"})))

A step whose method nobody registered is still valid (its fields go to the card's table under a title made from the
method's name): reports written by newer versions or other tools stay readable.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

#: the method packages that declare the library's own step kinds (imported the first time a kind is looked up)
BUILTIN_MODULES = ("vlmcompress.pruning.steps", "vlmcompress.quantization.steps", "vlmcompress.distillation.steps",
                   "vlmcompress.export.steps", "vlmcompress.embedded.steps")


@dataclass(frozen=True)
class Citation:
    """A paper a card cites for a step: ``key`` (unique), why it is cited, and its BibTeX."""

    key: str
    what: str
    bibtex: str


@dataclass(frozen=True)
class StepKind:
    """One kind of report step.

    - ``method``: the step's ``method`` value in the report.
    - ``title``: the card's heading for it.
    - ``hub_relation``: what the step makes of its base model in the Hub's ``base_model_relation`` (``finetune``
      for a step that trains weights, ``quantized``; None for pruning and export, which the Hub has no word for).
      A chain with any ``finetune`` step is a fine-tune.
    - ``validate(step, where, problems)``: appends one message per problem in the step's own fields.
    - ``describe(step, fmt)``: ``(sentences, keys they cover)`` for the card; the other keys go to the step's table.
      ``fmt`` formats for the card: ``fmt.value(v)``, ``fmt.plural(n, word)``, ``fmt.model_name(ref)``.
    - ``citations(step)``: the ``Citation`` entries this step used (its importance, schedule, loss terms...).
    - ``tags(step)``: Hub tags the step adds to the card (``pruned``, ``4-bit``...), beside its method's name.
    """

    method: str
    title: str
    hub_relation: str | None = None
    validate: Callable[[dict, str, list], None] | None = None
    describe: Callable[[dict, object], tuple[list[str], set]] | None = None
    citations: Callable[[dict], list[Citation]] | None = None
    tags: Callable[[dict], list[str]] | None = None


STEP_KINDS: dict[str, StepKind] = {}
_loaded = False


def register_step_kind(kind: StepKind) -> StepKind:
    """Make ``kind`` known to the report, the cards and the citations (a second kind for one method replaces it)."""
    if not isinstance(kind, StepKind) or not kind.method:
        raise TypeError("register_step_kind takes a StepKind with a non-empty method")
    STEP_KINDS[kind.method] = kind
    return kind


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in BUILTIN_MODULES:
            importlib.import_module(name)


def step_kind(method) -> StepKind | None:
    """The registered kind of a step's ``method``, or None."""
    _load_builtin()
    return STEP_KINDS.get(method)


def step_kinds() -> dict[str, StepKind]:
    """Every registered kind, by method."""
    _load_builtin()
    return dict(STEP_KINDS)


def hub_relation(methods) -> str | None:
    """The Hub's ``base_model_relation`` of a chain of steps: ``finetune`` before any other, else the first one."""
    relations = [kind.hub_relation for kind in map(step_kind, methods) if kind is not None and kind.hub_relation]
    return "finetune" if "finetune" in relations else (relations[0] if relations else None)


def title_for(method: str) -> str:
    kind = step_kind(method)
    return kind.title if kind is not None else str(method).replace("_", " ").capitalize()
