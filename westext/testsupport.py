"""Helpers for the westext tests: a stand-in for west's WestCommand (west
is not installable here) and a fake mcusign that records how it was run."""

import json
import os
import stat
import sys
import textwrap
import types

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)


class FakeConfig:
    """west >= 1.0's Configuration.get('section.key')."""

    def __init__(self, values=None):
        self.values = values or {}

    def get(self, key, default=None):
        return self.values.get(key, default)


class WestCommand:
    """The part of west.commands.WestCommand an extension uses."""

    def __init__(self, name, help, description, accepts_unknown_args=False,
                 requires_workspace=True, verbosity=None):
        self.name = name
        self.help = help
        self.description = description
        self.accepts_unknown_args = accepts_unknown_args
        self.requires_workspace = requires_workspace
        self.config = FakeConfig()
        self.topdir = None


def install_fake_west():
    """Make `from west.commands import WestCommand` import the stand-in."""
    west = types.ModuleType('west')
    commands = types.ModuleType('west.commands')
    commands.WestCommand = WestCommand
    west.commands = commands
    sys.modules.setdefault('west', west)
    sys.modules.setdefault('west.commands', commands)


# The fake mcusign writes {"argv": ..., "cwd": ..., "west_topdir": ...} to
# $FAKE_MCUSIGN_LOG, prints a line on each stream, and exits $FAKE_MCUSIGN_RC.
FAKE_MCUSIGN = textwrap.dedent('''\
    #!{python}
    import json, os, sys
    with open(os.environ['FAKE_MCUSIGN_LOG'], 'w') as f:
        json.dump({{'argv': sys.argv[1:], 'cwd': os.getcwd(),
                   'west_topdir': os.environ.get('WEST_TOPDIR')}}, f)
    print('fake mcusign stdout')
    print('fake mcusign stderr', file=sys.stderr)
    sys.exit(int(os.environ.get('FAKE_MCUSIGN_RC', '0')))
    ''')


def write_fake_mcusign(directory, name='mcusign'):
    path = os.path.join(directory, name)
    with open(path, 'w') as f:
        f.write(FAKE_MCUSIGN.format(python=sys.executable))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def read_log(path):
    with open(path) as f:
        return json.load(f)


def make_build_dir(path, sysbuild=False):
    """A directory that is_zephyr_build() accepts."""
    os.makedirs(path, exist_ok=True)
    line = ('CMAKE_PROJECT_NAME:STATIC=sysbuild_toplevel' if sysbuild
            else 'ZEPHYR_TOOLCHAIN_VARIANT:INTERNAL=zephyr')
    with open(os.path.join(path, 'CMakeCache.txt'), 'w') as f:
        f.write(f'# This is the CMakeCache file.\n{line}\n')
    return path
