"""A logged session's report: figures (PNG), a summary (duration, passes, rate error, depth
used, strokes, faults) and the samples as CSV, from what `pen log` stored. (A treatment
session's record for the client's file is `pen.records.html`.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

RUNNING = "RUNNING"


def _faulty(v) -> bool:
    return v not in (None, "", "0", 0, "None", "null")


def timeline(samples: list[dict]) -> list[float]:
    """Seconds since the session's first sample, continuing across reboots of the pen."""
    out: list[float] = []
    offset = 0.0
    prev_boot = None
    first_t = None
    last = 0.0
    for s in samples:
        t = s.get("t_ms")
        if t is None:
            out.append(last)
            continue
        if s.get("boot") != prev_boot:
            if prev_boot is not None:
                offset = last + 0.001
            prev_boot = s.get("boot")
            first_t = t
        last = offset + (t - first_t) / 1000.0
        out.append(last)
    return out


def analyse(samples: list[dict], events: list[dict] | None = None, gaps: list[dict] | None = None,
            settle_s: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """The summary of a session. Rate error counts running samples from `settle_s` after each
    pass starts (the soft start ramps up before that)."""
    if not samples:
        raise ValueError("the session has no samples")
    ts = timeline(samples)
    passes: list[dict] = []
    cur: dict | None = None
    errors: list[float] = []
    rel_errors: list[float] = []
    depth_err = 0.0
    strokes = 0.0
    faults: list[dict] = []
    prev_fault = None
    for i, s in enumerate(samples):
        t = ts[i]
        running = s.get("state") == RUNNING
        dt = ts[i] - ts[i - 1] if i else 0.0
        if running:
            if cur is None:
                cur = {"start_s": t, "end_s": t, "strokes": 0.0, "depths": set(), "targets": set(),
                       "rates": []}  # fmt: skip
                passes.append(cur)
            cur["end_s"] = t
            hz = s.get("stroke_hz") or 0.0
            if 0 < dt < 1.0:
                cur["strokes"] += hz * dt
                strokes += hz * dt
            if s.get("target_depth_mm") is not None:
                cur["depths"].add(round(float(s["target_depth_mm"]), 2))
            tgt = s.get("target_hz")
            if tgt:
                cur["targets"].add(float(tgt))
            if tgt and t - cur["start_s"] >= settle_s:
                err = hz - float(tgt)
                errors.append(err)
                rel_errors.append(err / float(tgt))
                cur["rates"].append(hz)
            if s.get("depth_mm") is not None and s.get("target_depth_mm") is not None:
                if t - cur["start_s"] >= settle_s:
                    depth_err = max(depth_err, abs(s["depth_mm"] - s["target_depth_mm"]))
        else:
            cur = None
        f = s.get("fault")
        if _faulty(f) and not _faulty(prev_fault):
            faults.append({"t_s": round(t, 3), "fault": f, "state": s.get("state")})
        prev_fault = f
    for e in events or []:
        d = e.get("data") or {}
        if isinstance(d, dict) and (d.get("fault") or d.get("event") == "fault"):
            faults.append({"t_s": None, "fault": d.get("fault") or d.get("name"), "event": d})
    out_passes = []
    for n, p in enumerate(passes, 1):
        out_passes.append({
            "pass": n,
            "start_s": round(p["start_s"], 3),
            "duration_s": round(p["end_s"] - p["start_s"], 3),
            "depth_mm": sorted(p["depths"]),
            "target_hz": sorted(p["targets"]),
            "mean_hz": round(sum(p["rates"]) / len(p["rates"]), 2) if p["rates"] else None,
            "strokes": int(round(p["strokes"])),
        })  # fmt: skip
    depths = sorted({d for p in passes for d in p["depths"]})
    mean_abs = sum(abs(e) for e in errors) / len(errors) if errors else None
    worst = max(errors, key=abs) if errors else None
    return {
        "samples": len(samples),
        "duration_s": round(ts[-1] - ts[0], 3),
        "passes": out_passes,
        "pass_count": len(out_passes),
        "running_s": round(sum(p["duration_s"] for p in out_passes), 3),
        "rate_error_mean_hz": None if mean_abs is None else round(mean_abs, 3),
        "rate_error_mean_pct": None if not rel_errors
        else round(100 * sum(abs(e) for e in rel_errors) / len(rel_errors), 3),
        "rate_error_worst_hz": None if worst is None else round(worst, 3),
        "depth_used_mm": depths,
        "depth_error_worst_mm": round(depth_err, 4) if passes else None,
        "strokes": int(round(strokes)),
        "faults": faults,
        "gaps": [dict(g) for g in gaps or []],
        "settle_s": settle_s,
    }


def summary_lines(sid: int, a: dict) -> list[str]:
    def v(x, fmt):
        return "-" if x is None else format(x, fmt)

    lines = [
        f"session {sid}: {a['samples']} samples over {a['duration_s']:.1f} s",
        f"  passes: {a['pass_count']} ({a['running_s']:.1f} s running)",
    ]
    for p in a["passes"]:
        d = ", ".join(f"{x:.2f}" for x in p["depth_mm"]) or "-"
        tg = ", ".join(f"{x:g}" for x in p["target_hz"]) or "-"
        lines.append(f"    #{p['pass']}: at {p['start_s']:.1f} s for {p['duration_s']:.1f} s, "
                     f"depth {d} mm, target {tg} Hz, mean {v(p['mean_hz'], '.1f')} Hz, "
                     f"{p['strokes']} strokes")  # fmt: skip
    lines += [
        f"  stroke rate error (after {a['settle_s']:g} s settling): mean "
        f"{v(a['rate_error_mean_hz'], '.2f')} Hz ({v(a['rate_error_mean_pct'], '.2f')} %), "
        f"worst {v(a['rate_error_worst_hz'], '+.2f')} Hz",
        "  depth used: " + (", ".join(f"{d:.2f}" for d in a["depth_used_mm"]) or "-")
        + " mm" + (f" (worst error {a['depth_error_worst_mm']:.3f} mm)"
                   if a["depth_error_worst_mm"] is not None else ""),
        f"  strokes: {a['strokes']}",
        "  faults: " + ("; ".join(f"{f['fault']}" + (f" at {f['t_s']:.1f} s" if f["t_s"] is not
                                                     None else "") for f in a["faults"])
                        or "none"),
    ]  # fmt: skip
    if a["gaps"]:
        lines.append(f"  gaps not filled: {len(a['gaps'])} (" + "; ".join(
            g["reason"] for g in a["gaps"]) + ")")  # fmt: skip
    return lines


def plot(samples: list[dict], analysis: dict, out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = timeline(samples)

    def col(key):
        return [s.get(key) if s.get(key) is not None else float("nan") for s in samples]

    fig, ax = plt.subplots(5, 1, figsize=(10, 11), sharex=True,
                           gridspec_kw={"height_ratios": [3, 2, 2, 2, 1]})  # fmt: skip
    ax[0].plot(ts, col("stroke_hz"), label="stroke rate", lw=1)
    ax[0].plot(ts, col("target_hz"), label="target", lw=1, ls="--")
    ax[0].set_ylabel("Hz")
    ax[1].plot(ts, col("depth_mm"), label="depth", lw=1)
    ax[1].plot(ts, col("target_depth_mm"), label="target", lw=1, ls="--")
    ax[1].set_ylabel("mm")
    ax[2].plot(ts, col("duty"), lw=1, color="tab:purple", label="duty")
    ax[2].set_ylabel("duty")
    ax[3].plot(ts, col("current_ma"), lw=1, color="tab:red", label="current")
    ax[3].set_ylabel("mA")
    fault = [1 if _faulty(s.get("fault")) else 0 for s in samples]
    ax[4].step(ts, fault, where="post", color="black", lw=1)
    ax[4].set_ylim(-0.2, 1.2)
    ax[4].set_yticks([0, 1], ["ok", "fault"])
    ax[4].set_xlabel("time (s)")
    for p in analysis["passes"]:
        for a in ax[:4]:
            a.axvspan(p["start_s"], p["start_s"] + p["duration_s"], color="green", alpha=0.06)
    for f in analysis["faults"]:
        if f.get("t_s") is not None:
            for a in ax:
                a.axvline(f["t_s"], color="red", lw=0.8, alpha=0.6)
    for a in ax[:2]:
        a.legend(loc="upper right", fontsize=8)
    for a in ax:
        a.grid(alpha=0.3)
    ax[0].set_title(title or "session")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def export_samples_csv(db: sqlite3.Connection, session_id: int, path: Path) -> int:
    """A logged session's samples as CSV (one row per sample); returns how many."""
    from . import logger as lg
    from .records.export import write_csv

    samples = lg.session_samples(db, session_id)
    cols = ["session_id", "boot", *lg.FIELDS, "source"]
    extra = sorted({k for s in samples for k in s} - set(cols))
    return write_csv(path, cols + extra, samples)
