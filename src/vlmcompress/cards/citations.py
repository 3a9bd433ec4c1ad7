"""``citations_for(report)``: the BibTeX of the model family and of the methods a run used, for its card.

The family's entry comes from its adapter; each step's from its registered kind (``vlmcompress.steps``), which
declares the papers behind its importance, schedule or loss terms.
"""

from __future__ import annotations


def citations_for(report: dict) -> list[dict]:
    """[{"key", "what", "bibtex"}] for the model family and every method in the report, in order, no repeats."""
    from ..adapters import adapter_for_family
    from ..steps import step_kind

    out, seen = [], set()

    def add(key, what, bibtex):
        if key not in seen:
            seen.add(key)
            out.append({"key": key, "what": what, "bibtex": bibtex})

    adapter = adapter_for_family(str(report.get("model_family") or ""))
    if adapter is not None and adapter.citation:
        add(adapter.family, *adapter.citation)
    for step in report.get("steps") or []:
        kind = step_kind(step.get("method")) if isinstance(step, dict) else None
        for citation in (kind.citations(step) if kind is not None and kind.citations else []):
            add(citation.key, citation.what, citation.bibtex)
    return out
