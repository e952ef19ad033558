"""Collect the MicroPython rp2 stubs into one folder for the firmware type check.

The stub packages install their .pyi files straight into site-packages, next to CPython's own
packages; pointing the type checker at all of site-packages would mix the two worlds. This links
only the files of `micropython-rp2-stubs` (and the `_mpy_shed` helpers of the stdlib stubs) into
a folder that becomes MYPYPATH, while `--custom-typeshed-dir` selects MicroPython's stdlib.
"""

import shutil
import sys
import sysconfig
from importlib import metadata
from pathlib import Path


def main(dest: str) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    out = Path(dest)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    dist = metadata.distribution("micropython-rp2-stubs")
    for f in dist.files or []:
        if str(f).endswith(".pyi"):
            target = out / str(f)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(site / str(f))
    (out / "_mpy_shed").symlink_to(site / "_mpy_shed")
    (out / "TYPESHED").write_text(str(site) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
