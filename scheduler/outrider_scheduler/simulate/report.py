"""``simulate.json``, the table on stdout and ``simulate.png`` of one simulation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .runner import PolicyResult, Simulation, outrider_spec

__all__ = ["document", "format_table", "write_outputs"]


def document(sim: Simulation, results: dict[str, PolicyResult]) -> dict[str, Any]:
    """The ``simulate.json`` dict."""
    static = results.get("static-peak")
    static_hours = static.gpu_seconds / 3600 if static else None
    s = sim.settings
    t = sim.timings
    return {
        "trace": sim.trace.name,
        "slo_p99_ms": s.slo_p99_ms,
        "peak_replicas": s.peak_replicas,
        "seconds": len(sim.rates),
        "quick": s.quick,
        "scale": round(sim.scale, 6),
        "replica_capacity_rps": round(sim.capacity_rps, 3),
        "replica_slo_rps": round(sim.slo_rps, 3),
        "variability": s.variability,
        "profile": {"model": sim.profile.model, "hardware": sim.profile.hardware},
        "timings": {
            "warm_promotion_s": t.warm_promotion_s,
            "cold_to_serving_s": t.cold_to_serving_s,
            "new_pod_s": t.new_pod_s,
            "source": t.source,
        },
        "forecaster": "walk-forward (quick settings, refitted at most daily, no ARIMA/Prophet baselines)"
        if sim.forecast_peak is not None
        else "none",
        "notes": sim.notes,
        "outrider_spec": outrider_spec(s),
        "policies": {name: r.summary(static_hours) for name, r in results.items()},
    }


def format_table(doc: dict[str, Any]) -> str:
    """A plain-text table of every policy."""
    columns = ("policy", "SLO min %", "violating", "GPU-h", "vs peak", "p99 ms", "rejected", "actions")
    head = f"{columns[0]:<12}" + "".join(f"{c:>11}" for c in columns[1:])
    lines = [head, "-" * len(head)]
    for name, p in doc["policies"].items():
        vs = p["gpu_hours_vs_static_peak"]
        p99 = p["p99_ms"]
        cells = (
            f"{p['slo_minutes_pct']:.2f}",
            str(p["violating_minutes"]),
            f"{p['gpu_hours']:.1f}",
            f"{vs:.2f}" if vs is not None else "-",
            f"{p99:.0f}" if p99 is not None else "-",
            str(p["rejected_requests"]),
            str(p["actions"]),
        )
        lines.append(f"{name:<12}" + "".join(f"{c:>11}" for c in cells))
    return "\n".join(lines)


def write_outputs(
    doc: dict[str, Any], sim: Simulation, results: dict[str, PolicyResult], out: Path
) -> tuple[Path, Path]:
    """Write ``simulate.json`` and ``simulate.png`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "simulate.json"
    jpath.write_text(json.dumps(doc, indent=2) + "\n")
    minutes = len(next(iter(results.values())).minute_ok) if results else 0
    x = np.arange(minutes) / 60.0  # hours
    load = np.array([sim.rates[60 * m : 60 * m + 60].mean() for m in range(minutes)])
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax = axes[0]
    ax.plot(x, load, color="black", linewidth=1.0, label="load (req/s)")
    for name, r in results.items():
        ax.plot(x, r.serving * sim.slo_rps, linewidth=0.8, label=f"{name} serving capacity")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    ax.set_title(
        f"{Path(sim.trace.name).name}: load and serving capacity (SLO p99 {sim.settings.slo_p99_ms:.0f} ms)"
    )
    bx = axes[1]
    for i, r in enumerate(results.values()):
        bad = np.nonzero(~r.minute_ok)[0]
        bx.scatter(bad / 60.0, np.full(bad.size, i), s=2, marker="|")
    bx.set_yticks(range(len(results)), list(results))
    bx.set_xlabel("hours")
    bx.set_title("minutes violating the SLO", fontsize=9)
    fig.tight_layout()
    ppath = out / "simulate.png"
    fig.savefig(ppath, dpi=110)
    plt.close(fig)
    return jpath, ppath
