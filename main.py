"""Pen application entry point: build the board, run the firmware."""

import firmware.app

firmware.app.main()
