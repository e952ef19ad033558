"""Sub-commands of `pen`: each module here has `register(subparsers)`.

A module registers one or more sub-commands; `pen.cli` discovers the modules, so adding a
command means adding a file here, nothing else.
"""
