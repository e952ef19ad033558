"""The session record as a self-contained HTML page (prints well; no external files)."""

from __future__ import annotations

from html import escape
from typing import Any

from .. import __version__
from .store import SessionRecord
from .timeutil import now_iso

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 52em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.yes { color: #a00; font-weight: bold; }
.aftercare { white-space: pre-wrap; border: 1px solid #ccc; padding: 0.8em; background: #fafafa; }
.note { color: #666; font-size: 0.85em; margin-top: 2em; }
"""


def _e(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _num(value: Any, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _detail(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in detail.items())


def render_session_html(session: SessionRecord, aftercare: str | None = None) -> str:
    """The HTML record of one session. The aftercare text is the one stored with the session
    when it started (so a later edit does not rewrite history), else `aftercare`."""
    s = session.row
    preset = session.preset_text() or "none"
    facts = [
        ("Client (pseudonym)", s["client_id"]),
        ("Date", s["started_at"]),
        ("Indication", s["indication"]),
        ("Area", s["area"]),
        ("Preset", preset),
        ("Cartridge", s["cartridge"] or "not recorded"),
        ("Duration", _duration(s["duration_s"])),
        ("Clinician", s["clinician"] or "not recorded"),
        ("Status", s["status"]),
    ]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Session {session.id} - {_e(s['client_id'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Microneedling session {session.id}</h1>",
        "<table>",
    ]
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts]
    out.append("</table>")

    out.append("<h2>Contraindication checklist</h2>")
    if session.answers:
        out.append("<table><tr><th>Question</th><th>Answer</th></tr>")
        for a in session.answers:
            answer = '<span class="yes">yes</span>' if a["answer"] else "no"
            out.append(f"<tr><td>{_e(a['question'])}</td><td>{answer}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No answers recorded.</p>")

    out.append("<h2>Overrides</h2>")
    if session.overrides:
        out.append(
            "<table><tr><th>Kind</th><th>From</th><th>By</th><th>Reason</th><th>When</th>"
            "<th>Detail</th></tr>"
        )
        for o in session.overrides:
            out.append(
                f"<tr><td>{_e(o['kind'])}</td><td>{_e(o['source'])}</td><td>{_e(o['by_whom'])}"
                f"</td><td>{_e(o['reason'])}</td><td>{_e(o['at'])}</td>"
                f"<td>{_e(_detail(o['detail']))}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>None.</p>")

    out.append("<h2>Passes</h2>")
    if session.passes:
        out.append(
            "<table><tr><th>#</th><th>Start (s)</th><th>Duration (s)</th><th>Depth (mm)</th>"
            "<th>Stroke rate (Hz)</th><th>Strokes</th></tr>"
        )
        for p in session.passes:
            out.append(
                f"<tr><td class=num>{p['seq']}</td><td class=num>{_num(p['start_s'], '.1f')}</td>"
                f"<td class=num>{_num(p['duration_s'], '.1f')}</td>"
                f"<td class=num>{_num(p['depth_mm'], '.2f')}</td>"
                f"<td class=num>{_num(p['stroke_hz'], '.0f')}</td>"
                f"<td class=num>{p['strokes']}</td></tr>"
            )
        total = sum(p["strokes"] for p in session.passes)
        out.append(f"<tr><th colspan=5>Total strokes</th><td class=num>{total}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No passes recorded yet.</p>")

    out.append("<h2>Faults</h2>")
    if session.faults:
        out.append("<ul>")
        for f in session.faults:
            at = f" at {f['at_s']:.1f} s" if f["at_s"] is not None else ""
            detail = f": {f['detail']}" if f["detail"] else ""
            out.append(f"<li>{_e(f['code'])}{_e(at)}{_e(detail)}</li>")
        out.append("</ul>")
    else:
        out.append("<p>None.</p>")

    text = s.get("aftercare_text") or aftercare or ""
    out.append("<h2>Aftercare</h2>")
    out.append(f'<div class="aftercare">{_e(text.strip())}</div>')
    out.append(
        f'<p class="note">Generated by pen {_e(__version__)} on {_e(now_iso())}. '
        "Preset depths are the clinic's starting points, not medical advice.</p>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
