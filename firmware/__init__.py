"""Pen firmware logic. Knows no pins: hardware arrives as driver objects (drivers/)."""
