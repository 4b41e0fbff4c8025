"""Point the ROS 2 wheels' exported CMake include paths at this Python's and numpy's headers.

Why: the wheels were built on a manylinux machine, and their exported CMake targets
(share/<pkg>/cmake/*Export.cmake) name that machine's include folders,
/opt/python/cpXY-cpXY/include/pythonX.Y and .../site-packages/numpy/_core/include. CMake
rejects an imported target whose include folder does not exist. Rewriting the venv's own copies
of those files keeps set-up inside the venv: no links under /opt, nothing shared between two
clones. Idempotent (a rewritten file names no /opt/python path any more); run it after every
pip install, since reinstalling a wheel brings the original files back.

Usage: python .ci/wheel_cmake_paths.py [PREFIX]   (default: this Python's sys.prefix)
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import tempfile
from pathlib import Path

BUILD_MACHINE = b"/opt/python/"
PYTHON_INCLUDE = re.compile(rb"/opt/python/cp\d+-cp\d+\w*/include/python\d+\.\d+\w*")
NUMPY_INCLUDE = re.compile(
    rb"/opt/python/cp\d+-cp\d+\w*/lib/python\d+\.\d+\w*/site-packages/numpy/(?:_core|core)/include")


def rewrite(text: bytes, python_include: str, numpy_include: str) -> bytes:
    """`text` with the build machine's include folders replaced by this machine's."""
    text = NUMPY_INCLUDE.sub(numpy_include.encode().replace(b"\\", b"\\\\"), text)
    return PYTHON_INCLUDE.sub(python_include.encode().replace(b"\\", b"\\\\"), text)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file beside it, keeping its mode."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str]) -> int:
    prefix = Path(argv[1] if len(argv) > 1 else sys.prefix)
    import numpy

    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    for folder, what in ((python_include, "Python.h"), (numpy_include, "numpy/arrayobject.h")):
        if not (Path(folder) / what).exists():
            print(f"error: {folder}/{what} not found: install Python's headers "
                  "(python3-dev on Debian) and numpy", file=sys.stderr)
            return 1
    rewritten, left = 0, []
    for path in sorted(prefix.glob("share/*/cmake/*.cmake")):
        data = path.read_bytes()
        if BUILD_MACHINE not in data:
            continue
        new = rewrite(data, python_include, numpy_include)
        if BUILD_MACHINE in new:
            left.append(str(path))
        replace_file(path, new)
        rewritten += 1
    if left:
        print("error: unknown build-machine paths remain in:\n  " + "\n  ".join(left), file=sys.stderr)
        return 1
    if rewritten:
        print(f"wheel_cmake_paths: {rewritten} CMake export file(s) now name {python_include} "
              f"and {numpy_include}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
