"""The benchmark scripts. Each runs as a script (``python benchmarks/run.py``) and imports as a module from the
repository root (``import benchmarks.run``: tests and ``render_pages``); nothing loads them by file path."""
