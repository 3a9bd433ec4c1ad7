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
