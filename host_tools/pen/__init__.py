"""Host tools for the microneedling pen (the `pen` command)."""

__version__ = "0.1.0"
