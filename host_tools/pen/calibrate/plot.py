"""The calibration's report: a JSON file and a PNG (measured vs set depth, residuals)."""

from __future__ import annotations

import json
from pathlib import Path

from .fit import interp


def save_report(rep: dict, folder: Path) -> tuple[Path, Path | None]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / "calibration.json"
    js.write_text(json.dumps(rep, indent=2))
    png = folder / "calibration.png"
    try:
        plot_report(rep, png)
    except Exception as exc:  # noqa: BLE001 -- the JSON is the record; the plot is a view
        rep["plot_error"] = str(exc)
        js.write_text(json.dumps(rep, indent=2))
        return js, None
    return js, png


def plot_report(rep: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    tol = rep.get("config", {}).get("tol_mm", 0.02)
    for rnd in rep.get("rounds", []):
        n = rnd["round"]
        rd = rnd["readings"]
        table = rnd["fit"]["table"]
        ax[0][0].plot([s for s, _ in rd], [mm for _, mm in rd], "o", ms=3, label=f"round {n}")
        if table:
            ax[0][0].plot(table[0::2], [u / 1000 for u in table[1::2]], "-", lw=1,
                          label=f"table {n}")  # fmt: skip
            res = [(mm - interp(table, s) / 1000) * 1000 for s, mm in rd]
            ax[0][1].plot([s for s, _ in rd], res, "o", ms=3, label=f"round {n}")
        ver = rnd.get("verify") or []
        if ver:
            ax[1][0].plot([v["set_mm"] for v in ver], [v["measured_mm"] for v in ver], "o-",
                          ms=3, lw=1, label=f"round {n}")  # fmt: skip
            ax[1][1].plot([v["set_mm"] for v in ver], [v["error_mm"] * 1000 for v in ver], "o-",
                          ms=3, lw=1, label=f"round {n}")  # fmt: skip
    ax[0][0].set(title="measured protrusion vs microsteps", xlabel="microsteps", ylabel="mm")
    ax[0][1].set(title="fit residuals (reading - table)", xlabel="microsteps", ylabel="µm")
    lim = rep.get("limit_mm", 3.0)
    ax[1][0].plot([0, lim], [0, lim], "k--", lw=0.8, label="ideal")
    ax[1][0].set(title="verification: measured vs set depth", xlabel="set mm", ylabel="gauge mm")
    band = f"±{tol * 1000:.0f} µm"
    ax[1][1].axhspan(-tol * 1000, tol * 1000, color="green", alpha=0.1, label=band)
    ax[1][1].set(title="verification error", xlabel="set mm", ylabel="µm")
    for a in ax.flat:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    fig.suptitle(f"depth calibration: {rep.get('verdict', 'incomplete')}")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
