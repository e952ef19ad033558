"""Pen application entry point: build the board, run the firmware (unless boot.py chose safe
mode). The application never swallows Ctrl-C: it leaves for the REPL with the needle off."""

import drivers.board

if not getattr(drivers.board, "SAFE_MODE", False):
    import firmware.app

    firmware.app.main(drivers.board.build())
