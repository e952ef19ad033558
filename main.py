"""Pen application entry point: build the board, run the firmware (unless boot.py chose service
mode). In normal mode the REPL is never reached (SF-07, SF-08): the application ignores Ctrl-C
(every byte on the port is protocol input), and whatever ends it leaves the hardware safe
(the application's `finally`) and restarts the pen."""

import drivers.board

if not getattr(drivers.board, "SAFE_MODE", False):
    import firmware.app

    try:
        firmware.app.main(drivers.board.build())
    except SystemExit:
        raise  # a reset already under way
    except BaseException as e:  # noqa: BLE001 -- never the REPL in normal mode
        import sys

        sys.print_exception(e)
    drivers.board.reset(intended=False)  # the next boot reports it (WATCHDOG)
