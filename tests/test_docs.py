"""The README and docs/ say what is true: every code block they show runs, and the benchmark pages are up to date.

- Every fenced ```python block of README.md and docs/**/*.md (docs/benchmarks/ is generated: skipped) runs as written
  in a fresh interpreter; every ```bash / ```sh block runs with bash. Each block runs alone, in its own temp folder
  (with a link to the checkout's ``recipes/``, so ``python recipes/...`` works as from the repository root), with
  this interpreter's folder (the venv's ``bin``) first on PATH, offline (``HF_HUB_OFFLINE=1``) and without progress
  bars (``VLMCOMPRESS_NO_PROGRESS=1``). One test per block, named ``file:line``.
- ```text blocks are not run: they need the network or a Hub account, or run for minutes.
- Running every block takes minutes, so it is the slow tier; the fast tier compiles every Python block and parses
  every ``vlmcompress`` command line of every block (text blocks too) with the real parsers.
- docs/benchmarks/*.md equal what ``benchmarks/render_pages.py`` renders from benchmarks/results/*.json.
- No figure is typed by hand in the prose (numbers with units such as %, ms or MiB belong in generated pages).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = DOCS / "benchmarks"
RUN_LANGS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)[^\n`]*$")
BLOCK_TIMEOUT_S = 240


def doc_files() -> list[Path]:
    files = [ROOT / "README.md"] + sorted(DOCS.rglob("*.md"))
    return [f for f in files if f.is_file() and GENERATED not in f.parents]


def code_blocks(path: Path) -> list[dict]:
    """Fenced blocks of a markdown file: {"lang", "line" (of the opening fence, 1-based), "code"}."""
    blocks, current = [], None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if current is None:
            match = FENCE.match(line)
            if match:
                current = {"lang": match["lang"].lower(), "line": number, "fence": match["fence"],
                           "indent": len(match["indent"]), "lines": []}
            continue
        stripped = line.strip()
        if stripped.startswith(current["fence"][0] * len(current["fence"])) and stripped.strip(current["fence"][0]) == "":
            blocks.append({"lang": current["lang"], "line": current["line"], "code": "\n".join(current["lines"]) + "\n"})
            current = None
            continue
        indent = current["indent"]
        current["lines"].append(line[indent:] if line[:indent].strip() == "" else line)
    assert current is None, f"{path}:{current and current['line']}: code block is never closed"
    return blocks


def _all_blocks():
    out = []
    for path in doc_files():
        for block in code_blocks(path):
            out.append((path, block))
    return out


ALL_BLOCKS = _all_blocks()
RUNNABLE = [(p, b) for p, b in ALL_BLOCKS if b["lang"] in RUN_LANGS]


def _id(path: Path, block: dict) -> str:
    return f"{path.relative_to(ROOT)}:{block['line']}"


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", VLMCOMPRESS_NO_PROGRESS="1",
               HF_DATASETS_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false",
               VLMCOMPRESS_CACHE=str(tmp_path / ".cache"), MPLBACKEND="Agg")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def test_docs_have_blocks():
    assert len(doc_files()) >= 10, "README.md and the docs/ pages"
    assert RUNNABLE, "no python/bash block found"


@pytest.mark.slow
@pytest.mark.parametrize("path,block", RUNNABLE, ids=[_id(p, b) for p, b in RUNNABLE])
def test_code_block_runs(path, block, tmp_path):
    code = block["code"]
    assert "..." not in code.replace('"..."', "").replace("'...'", ""), "a runnable block must be complete (no ...)"
    (tmp_path / "recipes").symlink_to(ROOT / "recipes", target_is_directory=True)
    if RUN_LANGS[block["lang"]] == "python":
        script = tmp_path / "block.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
    else:
        script = tmp_path / "block.sh"
        script.write_text("set -euo pipefail\n" + code)
        command = ["bash", str(script)]
    try:
        result = subprocess.run(command, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                                timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{_id(path, block)} ran past {BLOCK_TIMEOUT_S} s: a docs block must be fast")
    assert result.returncode == 0, (f"{_id(path, block)} failed (exit {result.returncode}):\n"
                                    f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-4000:]}")


def test_every_python_block_compiles():
    """The fast tier's stand-in for running the blocks: each Python block is valid Python, with no "..." left in."""
    failures = []
    for path, block in RUNNABLE:
        if RUN_LANGS[block["lang"]] != "python":
            continue
        try:
            compile(block["code"], _id(path, block), "exec")
        except SyntaxError as exc:
            failures.append(f"{_id(path, block)}: {exc}")
    assert not failures, "\n".join(failures)


def command_lines(code: str) -> list[list[str]]:
    """The ``vlmcompress ...`` commands of a shell block as argument lists (continuations joined, comments, pipes,
    redirections and ``&&`` chains cut off; ``$VAR`` kept as a word)."""
    import shlex

    out = []
    for line in code.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        command, at_start = [], True
        for word in words:
            if word in ("&&", "||", ";", "|", "then", "if", "fi") or word.startswith(("2>", ">")):
                out.append(command)
                command, at_start = [], True
                continue
            if at_start and re.match(r"^[A-Z_]+=", word):  # VAR=value before the command
                continue
            command.append(word)
            at_start = False
        out.append(command)
    return [c[1:] for c in out if len(c) > 1 and c[0].split("/")[-1] == "vlmcompress"]


def test_every_vlmcompress_line_parses():
    """The fast tier's stand-in for running the blocks: every ``vlmcompress`` command in README and docs (text blocks
    included) parses with the real parser: the options it names exist and their values are accepted."""
    from vlmcompress.cli import build_parser
    from vlmcompress.cli.distill import _distill_argv
    from vlmcompress.workflows.distill import parse_arguments

    parsed, failures = 0, []
    for path, block in ALL_BLOCKS:
        if block["lang"] not in ("bash", "sh", "shell", "text", ""):
            continue
        for args in command_lines(block["code"]):
            where = f"{_id(path, block)}: vlmcompress {' '.join(args)}"
            try:
                routed = _distill_argv(args)
                if routed is not None:
                    family, rest = routed
                    parse_arguments(rest, family=family)
                else:
                    build_parser().parse_args(args)
                parsed += 1
            except (SystemExit, ValueError):  # argparse exits; HfArgumentParser raises on options it does not know
                failures.append(where)
    assert not failures, "commands that do not parse:\n" + "\n".join(failures)
    assert parsed >= 30, f"only {parsed} vlmcompress lines found: has the docs' shape changed?"


def test_readme_commands_match_ci():
    """The README's two commands: set-up and the test command CI runs, word for word."""
    ci = (ROOT / ".ci" / "run").read_text()
    first = next(b for p, b in ALL_BLOCKS if p.name == "README.md")
    lines = [line.strip() for line in first["code"].splitlines() if line.strip()]
    assert lines[0].startswith("./setup.sh && .venv/bin/vlmcompress prune ")
    test_command = lines[1]
    assert f"./setup.sh && {test_command}" in ci, f"README says {test_command!r}; .ci/run runs something else"
    assert (ROOT / "setup.sh").is_file()


def test_readme_prune_command_parses():
    """The first README command's prune part (run in full by CI's set-up on a fresh machine only): its options parse."""
    from vlmcompress.cli import build_parser

    first = next(b for p, b in ALL_BLOCKS if p.name == "README.md")
    prune = first["code"].splitlines()[0].split("&& .venv/bin/vlmcompress ", 1)[1].split()
    args = build_parser().parse_args(prune)
    assert args.command == "prune" and args.head_ratio == 0.25 and args.output_dir == "outputs/heads25"


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 210, f"README.md has {len(lines)} lines: move detail into docs/"


def test_links_resolve():
    """Every relative link of README.md and docs/ points at a file that exists."""
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken = []
    for path in doc_files() + sorted(GENERATED.glob("*.md")):
        for target in link.findall(path.read_text()):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            file = target.split("#", 1)[0]
            if file and not (path.parent / file).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


#: a number followed by a unit of a measured figure: sizes, times, speeds, accuracy shares
FIGURE = re.compile(r"(?<![\w.-])\d[\d,]*(\.\d+)?\s?(%|ms\b|s\b|sec|seconds?\b|min\b|minutes?\b|MiB|KiB|GiB|MB\b|GB\b|KB\b"
                    r"|×|x (faster|slower|smaller)|params\b|parameters\b|GFLOPS)")


def test_no_hand_typed_figures():
    """Measured numbers appear only in generated pages, reports and cards, never typed into the docs."""
    found = []
    for path in doc_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for match in FIGURE.finditer(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r} in {line.strip()[:100]!r}")
    assert not found, "hand-typed figures (put them in a generated page):\n" + "\n".join(found)


def _render_module():
    from benchmarks import render_pages

    return render_pages


def test_benchmark_pages_are_up_to_date(tmp_path):
    """docs/benchmarks/*.md are exactly what render_pages.py writes from benchmarks/results/*.json."""
    render = _render_module()
    written = render.render_all(ROOT / "benchmarks" / "results", tmp_path)
    assert written, "no benchmark result rendered"
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.md")}
    committed = {p.name: p.read_text() for p in GENERATED.glob("*.md")}
    assert sorted(fresh) == sorted(committed), "run `python benchmarks/render_pages.py` (pages missing or extra)"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale pages {stale}: run `python benchmarks/render_pages.py`"


def test_render_pages_states_settings_and_never_invents(tmp_path):
    """A page states the settings its JSON records, and says 'not recorded' / 'not measured' for what it lacks."""
    import json

    render = _render_module()
    results = tmp_path / "results"
    results.mkdir()
    metrics = {"params": 10, "size_bytes": 2048, "memory_bytes": 2048, "latency_ms": 2.0, "latency_batch_size": 4,
               "latency_threads": 3, "latency_dtype": "float32", "latency_device": "cpu", "eval_images": 200,
               "zero_shot_accuracy": 0.5, "zero_shot_accuracy_heldout": None}
    (results / "pruning.json").write_text(json.dumps({"base": metrics, "heads": {**metrics, "latency_ms": 1.0}}))
    quant = {"model": "/somewhere/clip-digits-teacher",
             "variants": {"fp32": {"metrics": metrics, "weight_bytes": {"token_embedding_share": 0.1}, "step": None,
                                   "drop_seen_points": 0.0, "drop_heldout_points": None},
                          "int8": {"metrics": {**metrics, "latency_ms_stock_reload": 3.0},
                                   "weight_bytes": {"quantized_linear_ratio": 0.25, "token_embedding_share": 0.2},
                                   "step": {"method": "quantization"}, "drop_seen_points": 0.5,
                                   "drop_heldout_points": None}}}
    (results / "quantization.json").write_text(json.dumps(quant))
    pages = tmp_path / "pages"
    render.render_all(results, pages)
    pruning = (pages / "pruning.md").read_text()
    assert "torch threads: 3" in pruning and "latency batch size: 4" in pruning and "dtype: float32" in pruning
    assert "test images: 200 images" in pruning
    assert "not recorded" in pruning  # the JSON names no CPU model
    assert "not measured" in pruning  # held-out accuracy is null
    assert "0.50" in pruning  # latency relative to base
    quantization = (pages / "quantization.md").read_text()
    assert "clip-digits-teacher" in quantization and "/somewhere" not in quantization
    assert "0.250" in quantization
    index = (pages / "index.md").read_text()
    assert "pruning.md" in index and "quantization.md" in index
