"""Board construction: the only place that maps `hardware/pins.py` onto driver objects."""

import sys

import hardware.pins as P
from drivers.serial_link import SerialLink


class Board:
    """The pen's hardware as driver objects, handed to the firmware logic."""

    def __init__(self):
        self.pins = P
        self.serial = SerialLink(sys.stdin.buffer, sys.stdout.buffer)


def build():
    return Board()
