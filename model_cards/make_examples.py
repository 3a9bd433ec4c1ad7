"""Regenerate the example model cards in ``model_cards/examples/`` by running the real commands on the embedded teacher.

    .venv/bin/python model_cards/make_examples.py            # every example (a few minutes on 2 CPU cores)
    .venv/bin/python model_cards/make_examples.py heads25    # only the named ones

Each example runs its vlmcompress command into a scratch folder (the checkpoint, its report and its card are written
there by the command itself), then copies what a reader needs to see what they get: ``README.md`` (the card), its
plots, ``compression_report.json`` and ``config.json`` (so ``vlmcompress card`` can re-render it). Weights stay out.

Adding an example (a quantized or distilled checkpoint, or one made from another example) is one more ``Example`` in
``EXAMPLES``; ``{base}`` in its arguments is replaced by the output folder of the example named in ``base``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLIP_TEACHER = str(HERE.parent / "src" / "vlmcompress" / "assets" / "blip-digits-captioner")
OUT = HERE / "examples"
COPIED = ("README.md", "compression_report.json", "config.json", "recipe.yaml", "*.png")


@dataclass
class Example:
    name: str
    argv: list  # a vlmcompress command line (or a recipe's arguments), without the output folder
    description: str
    base: str | None = None  # another example whose output folder replaces {base} in argv
    recipe: str | None = None  # recipes/<name>.py run instead of the vlmcompress command (output: --output_dir)


EXAMPLES = [
    Example("heads25", ["prune", "--head-ratio", "0.25"],
            "25% of attention heads removed by the default importance (ablation: each head scored by how far removing "
            "it moves the outputs; per-layer shapes: loads with remote code)"),
    Example("half-depth", ["prune", "--drop-layers", "vision:1,3", "text:1,3"],
            "layers 1 and 3 of both towers dropped (stock CLIPModel reloads it)"),
    Example("mixed", ["prune", "--layer-strategy", "block_influence", "--remove-layers", "vision:1", "text:1",
                      "--mlp-ratio", "0.5"],
            "combined: the layer per tower that changes its input least dropped, then half of every MLP"),
    Example("int8", ["quantize", "--bits", "8"], "LLM.int8 (bitsandbytes 8-bit) of both towers' Linears"),
    Example("nf4", ["quantize", "--bits", "4", "--quant-type", "nf4"], "bitsandbytes 4-bit NF4 of both towers' Linears"),
    Example("distilled", [], "distilled into a student with half the layers and 3/4 of the MLP neurons "
            "(`recipes/distill_clip.py` defaults)", recipe="distill_clip"),
    Example("distilled-nf4", ["quantize", "{base}", "--bits", "4", "--quant-type", "nf4"],
            "combined across methods: the distilled student, then 4-bit NF4", base="distilled"),
    Example("blip-heads25", ["prune", BLIP_TEACHER, "--head-ratio", "0.25", "--images-per-number", "20"],
            "BLIP captioner (`vlmcompress/blip-digits-captioner`): 25% of the heads of its vision tower and of the "
            "decoder's self- and cross-attention removed by the default (ablation) importance (fused qkv sliced; remote code)"),
    Example("blip-distilled", [], "BLIP captioner distilled into a student with half the layers and 65% of the MLP "
            "neurons (`recipes/distill_blip.py` defaults)", recipe="distill_blip"),
    Example("blip-distilled-nf4", ["quantize", "{base}", "--bits", "4", "--quant-type", "nf4", "--images-per-number", "20"],
            "the distilled BLIP captioner, then 4-bit NF4", base="blip-distilled"),
    Example("clip-small", ["compress", str(HERE.parent / "recipes" / "clip_small.yaml")],
            "`vlmcompress compress recipes/clip_small.yaml`: a narrow student (every 2nd layer, half the width and "
            "heads, MLP -25%) inherited from the teacher and distilled from it, then nf4 of every Linear, the "
            "projections included, the rest in bf16 (one recipe, two stage folders; the card shows the chain and the "
            "recipe)"),
]


def run(example: Example, scratch: Path, outputs: dict) -> Path:
    folder = scratch / example.name
    argv = [a.replace("{base}", str(outputs[example.base])) if example.base else a for a in example.argv]
    if example.recipe:
        script = HERE.parent / "recipes" / f"{example.recipe}.py"
        cmd = [sys.executable, str(script), *argv, "--output_dir", str(folder)]
        print(f"$ python recipes/{example.recipe}.py " + " ".join(argv + ["--output_dir", f"<{example.name}>"]),
              flush=True)
    else:
        cmd = [sys.executable, "-m", "vlmcompress", *argv, "--output-dir", str(folder)]
        print("$ vlmcompress " + " ".join(argv + ["--output-dir", f"<{example.name}>"]), flush=True)
    subprocess.run(cmd, check=True)
    stages = sorted(p for p in folder.glob("[0-9][0-9]-*") if p.is_dir())
    if stages:  # a recipe: the model is its last stage's folder
        folder = stages[-1]
    dest = OUT / example.name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for pattern in COPIED:
        for path in folder.glob(pattern):
            shutil.copy2(path, dest / path.name)
    return folder


def write_index(examples) -> None:
    lines = ["# Example model cards", "",
             "Generated by `python model_cards/make_examples.py` from real runs on the embedded teachers "
             "(`vlmcompress/clip-digits-teacher`, and `vlmcompress/blip-digits-captioner` for the `blip-` ones); "
             "every number comes from the run's `compression_report.json`.", "",
             "| example | what was done | card |", "| --- | --- | --- |"]
    for ex in examples:
        lines.append(f"| `{ex.name}` | {ex.description} | [README.md]({ex.name}/README.md) |")
    (OUT / "README.md").write_text("\n".join(lines) + "\n")


def main(names) -> int:
    chosen = [e for e in EXAMPLES if not names or e.name in names]
    unknown = set(names) - {e.name for e in EXAMPLES}
    if unknown:
        print(f"unknown example(s): {', '.join(sorted(unknown))}; known: {', '.join(e.name for e in EXAMPLES)}",
              file=sys.stderr)
        return 2
    needed = {e.base for e in chosen if e.base}
    chosen = [e for e in EXAMPLES if e in chosen or e.name in needed]  # bases run first, in list order
    with tempfile.TemporaryDirectory(prefix="vlmcompress-examples-") as tmp:
        outputs: dict = {}
        for example in chosen:
            outputs[example.name] = run(example, Path(tmp), outputs)
    write_index(EXAMPLES)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
