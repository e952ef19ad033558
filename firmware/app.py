"""The pen application: composes the firmware pieces and runs the asyncio tasks (serial link,
UI, housekeeping). Timing-critical work is not here: it is in hardware and the control tick."""

import asyncio

from firmware.link import SerialService
from firmware.protocol import Protocol
from firmware.version import FIRMWARE_VERSION, PROTOCOL_VERSION


class App:
    def __init__(self, board):
        self.board = board
        self.protocol = Protocol(self)
        self.link = SerialService(self, board.serial)
        self.state = "LOCKED"

    def status(self):
        return {
            "state": self.state,
            "homed": False,
            "depth_mm": 0.0,
            "target_depth_mm": 0.0,
            "stroke_hz": 0.0,
            "target_hz": 0,
            "fault": None,
            "firmware_version": FIRMWARE_VERSION,
            "protocol_version": PROTOCOL_VERSION,
        }

    async def main(self):
        await self.link.run()


def main(board=None):
    if board is None:
        import drivers.board

        board = drivers.board.build()
    app = App(board)
    asyncio.run(app.main())
