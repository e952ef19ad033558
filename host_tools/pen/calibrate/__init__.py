"""Guided depth calibration, in the spirit of a 3D printer's probe calibration.

1. Home the depth axis; read the pen's current table (`calib get`) and depth limit.
2. In the service state, move the stop to `points` positions across the range (raw microstep
   moves, `move_steps`), each approached from the retracted side (back off, then out), and read
   the dial gauge `repeats` times per point: automatically (`--gauge PORT`, a serial indicator;
   `--gauge virtual`, the virtual pen's) or typed by the operator.
3. Fit the table: one knot per point (the mean of its readings), in the firmware's own format
   (`firmware.calib.CalibrationTable`: strictly increasing steps and µm, plausible slope),
   extended along the end segment when the measured range stops short of 0 or the depth limit.
   Residuals of every reading (max, RMS), repeatability per point (range, σ) and each point's
   deviation from a smooth curve through all of them are reported; a fit that fails a limit is
   rejected with the reason, and nothing is written.
4. After confirmation, write the table (`calib set`; the service state and the table both need
   the clinician unlock, done with the secret before each).
5. Verification pass: set depths 0 .. the limit (alternately from the shallow and the deep end,
   so both approach directions are exercised) and read the gauge. Errors beyond the tolerance
   where the table was extended are re-measured once (the stop now reaches there); otherwise the
   previous table is restored and the calibration rejected.
6. A JSON report and a PNG plot (measured vs set depth, residuals) are saved.

The gauge must read the needle protrusion: zero it with the needle tips flush with the stop's
face before starting (the virtual gauge reads the true protrusion).

The parts: `fit` (pure maths: plan, fit, limits), `gauges`, `pen_ops` (the wire commands),
`procedure` (Calibrator, Ui), `plot` (the JSON report and the PNG).
"""

from __future__ import annotations

from .errors import CalibrationError, CalibrationRejected
from .fit import Config, Fit, axis_constants, fit_table, make_table, plan_points, verify_depths
from .gauges import SerialGauge, TypedGauge, VirtualGauge
from .pen_ops import PenOps
from .plot import plot_report, save_report
from .procedure import Calibrator, Ui

__all__ = [
    "CalibrationError", "CalibrationRejected", "Calibrator", "Config", "Fit", "PenOps",
    "SerialGauge", "TypedGauge", "Ui", "VirtualGauge", "axis_constants", "fit_table",
    "make_table", "plan_points", "plot_report", "save_report", "verify_depths",
]  # fmt: skip
