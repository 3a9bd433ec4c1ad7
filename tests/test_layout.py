"""How the repository's code finds its code: through imports only (no script loaded by file path, no sys.path
surgery), with the repository root importable for the scripts' folders (pyproject's pytest pythonpath)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("src", "recipes", "benchmarks", "tests", "model_cards")


def test_nothing_is_imported_by_file_path():
    banned = ("spec_from_file_location", "sys.path.append", "sys.path.insert", "SourceFileLoader")
    found = [f"{path.relative_to(ROOT)}: {word}" for folder in FOLDERS for path in (ROOT / folder).rglob("*.py")
             if path.name != "test_layout.py" for word in banned if word in path.read_text()]
    assert not found, found


def test_benchmarks_and_examples_import_as_modules():
    import benchmarks.render_pages
    import benchmarks.run
    import model_cards.make_examples

    assert benchmarks.render_pages.render_evidence and benchmarks.run.SUITES and model_cards.make_examples.EXAMPLES


def test_the_command_line_is_small_command_modules():
    """One module per command under vlmcompress/cli, none over 200 lines, no function over 60 (a long function is
    where a second copy of a stage's sequence starts)."""
    import ast

    cli = ROOT / "src" / "vlmcompress" / "cli"
    assert not (ROOT / "src" / "vlmcompress" / "cli.py").exists()
    long_modules = [f"{p.name}: {n}" for p in cli.glob("*.py") if (n := len(p.read_text().splitlines())) > 200]
    assert not long_modules, long_modules
    long_functions = [f"{p.name}:{node.name}: {node.end_lineno - node.lineno + 1}" for p in cli.glob("*.py")
                      for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.FunctionDef)
                      and node.end_lineno - node.lineno + 1 > 60]
    assert not long_functions, long_functions
    from vlmcompress.cli import app

    subparsers = app.build_parser()._subparsers._group_actions[0]
    assert list(subparsers.choices) == ["evaluate", "prune", "quantize", "export", "distill", "compress", "plan",
                                        "card", "cache-teacher", "push"]
    assert {m.__name__.rsplit(".", 1)[1] for m in app.COMMANDS} == {
        "evaluate", "prune", "quantize", "export", "distill", "compress", "card", "cache_teacher", "push"}
