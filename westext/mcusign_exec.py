"""Find the mcusign binary and run it in place of the current process.

Shared by the west extension (mcusign_west.py) and the imgtool shim
(imgtool.py). Standard library only: it runs under whatever Python west or
CMake uses.

mcusign is looked for, in order, at:
  1. $MCUSIGN (a path to the binary),
  2. <this checkout>/bin/mcusign (what `go build -o bin/ ./cmd/...` writes),
  3. PATH.
"""

import os
import shutil
import subprocess
import sys

# The mcusign checkout this file belongs to: westext/ is at its top.
CHECKOUT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))

# Exit status when mcusign cannot be found, as a shell's "command not found".
NOT_FOUND = 127


class NotFound(Exception):
    """mcusign is not installed where we look; the message says how to fix it."""


def _executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_mcusign(env=None, checkout=None):
    """Return the path of the mcusign binary to run, or raise NotFound."""
    env = os.environ if env is None else env
    checkout = CHECKOUT if checkout is None else checkout
    explicit = env.get('MCUSIGN')
    if explicit:
        if not _executable(explicit):
            raise NotFound(f'MCUSIGN={explicit} is not an executable file: '
                           'point MCUSIGN at the mcusign binary, or unset it')
        return explicit
    name = 'mcusign.exe' if os.name == 'nt' else 'mcusign'
    local = os.path.join(checkout, 'bin', name)
    if _executable(local):
        return local
    found = shutil.which('mcusign', path=env.get('PATH', os.defpath))
    if found:
        return found
    raise NotFound('mcusign not found: build it with '
                   f'`cd {checkout} && go build -o bin/ ./cmd/...`, '
                   'put it on PATH, or set MCUSIGN=/path/to/mcusign')


def exec_mcusign(args, env=None):
    """Replace this process with `mcusign ARGS`; mcusign's exit status
    becomes ours. Does not return."""
    env = dict(os.environ if env is None else env)
    try:
        exe = find_mcusign(env)
    except NotFound as e:
        sys.stderr.write(f'mcusign: error: {e}\n')
        sys.exit(NOT_FOUND)
    argv = [exe] + list(args)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == 'nt':
        # Windows has no exec: os.execv would start mcusign and return
        # exit status 0 at once. Wait for it instead.
        sys.exit(subprocess.call(argv, env=env))
    os.execve(exe, argv, env)
