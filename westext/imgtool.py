#!/usr/bin/env python3
"""imgtool shim: runs mcusign with exactly this script's arguments.

Zephyr 4.x signs at build time with `${PYTHON_EXECUTABLE} ${IMGTOOL} sign ...`,
so IMGTOOL must be something Python can run. Point it here and the build
signs with mcusign (and with keys in an HSM):

    west build -b nrf52dk/nrf52832 app -- \\
        -DIMGTOOL=/path/to/mcusign/westext/imgtool.py

With sysbuild, Zephyr reads IMGTOOL per image: -D<image>_IMGTOOL=..., where
<image> is the application's image name (its directory name), e.g.
-Dhello_world_IMGTOOL=/path/to/mcusign/westext/imgtool.py. mcusign is found
as mcusign_exec.py says: $MCUSIGN, <checkout>/bin/mcusign, then PATH. Its
exit status is this script's. Standard library only.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from mcusign_exec import exec_mcusign  # noqa: E402

if __name__ == '__main__':
    exec_mcusign(sys.argv[1:])
