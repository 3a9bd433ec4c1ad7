"""Zero-shot prompt templates: a built-in set, OpenAI's 80 ImageNet templates, or the user's file."""

from __future__ import annotations

from pathlib import Path

from ..errors import VlmcompressError

DEFAULT_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.")
_FOLDER = Path(__file__).resolve().parent / "templates"
BUILT_IN = ("default", "openai_imagenet")


def load_templates(spec: str | None = None) -> list[str]:
    """``None``/``"default"``: the built-in "a photo of a {}." set; ``"openai_imagenet"``: the 80 prompts of CLIP's
    ImageNet evaluation (Radford et al., 2021); anything else: a text file with one template per line, each with
    ``{}`` where the class name goes (blank lines and lines starting with ``#`` are skipped)."""
    if spec is None or spec == "default":
        return list(DEFAULT_TEMPLATES)
    if spec == "openai_imagenet":
        path = _FOLDER / "openai_imagenet.txt"
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise VlmcompressError(f"--templates {spec}: no such file; expected {' or '.join(BUILT_IN)} or a text file "
                                   "with one template per line, each with {} for the class name")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    templates = [line for line in lines if line and not line.startswith("#")]
    if not templates:
        raise VlmcompressError(f"--templates {spec} holds no templates: one per line, each with {{}} for the class name")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise VlmcompressError(f"--templates {spec}: {len(bad)} line(s) without {{}} for the class name, e.g. {bad[0]!r}")
    return templates


def templates_name(spec: str | None) -> str:
    return "default" if spec is None else (spec if spec in BUILT_IN else Path(spec).name)
