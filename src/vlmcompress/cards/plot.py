"""PNG plots for model cards, drawn with matplotlib's Agg canvas (no display, no global pyplot state).

Files are byte-for-byte reproducible from the same numbers (no timestamp or software version in the PNG).
"""

from __future__ import annotations

from pathlib import Path

ACCURACY_PLOT = "accuracy_vs_size.png"
LOSS_PLOT = "training_loss.png"


def _figure(width=6.4, height=4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    import io
    import os
    import tempfile

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def size_axis(points):
    """("size_bytes", "weights on disk (MiB)", scale) when every point has it, else params, else None."""
    if points and all(p["metrics"].get("size_bytes") is not None for p in points):
        return "size_bytes", "weights on disk (MiB)", 1 / 2**20
    if points and all(p["metrics"].get("params") is not None for p in points):
        return "params", "parameters (millions)", 1e-6
    return None


#: the accuracy a plot shows: zero-shot (two-tower models) or caption accuracy (captioners), with their axis names
ACCURACIES = (("zero_shot_accuracy", "zero-shot accuracy"), ("caption_accuracy", "caption accuracy"))


def accuracy_key(points):
    """(metric key, its name) of the first accuracy some point measured, or (None, None)."""
    for key, name in ACCURACIES:
        if any(p["metrics"] and (p["metrics"].get(key) is not None or p["metrics"].get(f"{key}_heldout") is not None)
               for p in points):
            return key, name
    return None, None


def plottable(points) -> list:
    """The points that have a size and at least one accuracy (zero-shot, or caption accuracy for captioners)."""
    key, _ = accuracy_key(points)
    points = [p for p in points if key and p["metrics"] and (p["metrics"].get(key) is not None
                                                             or p["metrics"].get(f"{key}_heldout") is not None)]
    return points if size_axis(points) else []


def accuracy_vs_size(points, path, title: str):
    """One marker per point (base, intermediate steps, result), joined in run order; seen and held-out accuracy.

    ``points``: [{"label": str, "metrics": METRICS}]. Returns the path, or None when nothing is plottable.
    """
    points = plottable(points)
    if not points:
        return None
    key, xlabel, scale = size_axis(points)
    acc_key, acc_name = accuracy_key(points)
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    xs = [p["metrics"][key] * scale for p in points]
    series = ((acc_key, f"{acc_name} (seen classes)" if any(
        p["metrics"].get(f"{acc_key}_heldout") is not None for p in points) else acc_name, "o", "-"),
        (f"{acc_key}_heldout", f"{acc_name} (held-out classes)", "s", "--"))
    for metric, label, marker, style in series:
        pts = [(x, 100 * p["metrics"][metric]) for x, p in zip(xs, points) if p["metrics"].get(metric) is not None]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker=marker, linestyle=style, label=label)
    right = max(xs)
    for x, p in zip(xs, points):
        acc = p["metrics"].get(acc_key)
        if acc is None:
            acc = p["metrics"].get(f"{acc_key}_heldout")
        at_right = x == right and len(set(xs)) > 1
        ax.annotate(f"{p.get('short', p['label'])}\n{100 * acc:.1f}%", (x, 100 * acc), textcoords="offset points",
                    xytext=(-6, 6) if at_right else (6, 6), ha="right" if at_right else "left", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 105)
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.15 or max(hi, 1e-9) * 0.15
    ax.set_xlim(max(0.0, lo - pad), hi + pad)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def loss_keys(loss_log) -> list:
    """The loss series a log can draw (the total first, then its parts): keys named ``loss``, ``loss_*`` or ``*_loss``
    with numbers, in rows that have a numeric ``step``. Empty when there is nothing to plot."""
    rows = [r for r in loss_log or [] if isinstance(r, dict) and isinstance(r.get("step"), (int, float))]
    return sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k != "step"
                   and (k == "loss" or k.startswith("loss_") or k.endswith("_loss"))}, key=lambda k: (k != "loss", k))


def training_loss(logs, path, title: str):
    """Loss against step for each training record: ``logs`` is [{"label", "loss_log": [{"step", "loss", ...}]}].

    Every key starting with ``loss`` is drawn (the total solid, its parts thin). Returns None when nothing is logged.
    """
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    drawn = False
    for log in logs:
        rows = [r for r in log["loss_log"] if isinstance(r, dict) and isinstance(r.get("step"), (int, float))]
        for k in loss_keys(rows):
            pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
            if pts:
                name = f"{log['label']}: {k}" if len(logs) > 1 else k
                ax.plot([s for s, _ in pts], [v for _, v in pts], linewidth=1.8 if k == "loss" else 0.9, label=name)
                drawn = True
    if not drawn:
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
