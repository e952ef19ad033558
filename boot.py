"""Runs first at power-up."""
