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


def table(header: list, rows: list, align: list[str] | None = None) -> list[str]:
    """A Markdown table: the first column left-aligned and the rest right-aligned unless ``align`` ("l"/"r" per column)
    says otherwise; cells are shown with ``str`` and their pipes escaped."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    out += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out
