"""`west mcusign`: run mcusign on the build directory west users mean.

A thin shim, standard library only: it finds the build directory the way
`west build` and `west sign` do (-d, else build.dir-fmt or build/, else the
current directory) and replaces itself with the mcusign binary, which does
all the work (see mcusign_exec.py for where the binary is looked for).

    west mcusign sign [-d BUILD_DIR] [mcusign sign options]
    west mcusign doctor [-d BUILD_DIR] [--format json]
    west mcusign getpub [mcusign getpub options]
    west mcusign status

Everything but -d/--build-dir is passed to mcusign unchanged; after `--`,
even -d is (for mcusign sign's own -d/--dependencies). mcusign's exit status
is west's.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from mcusign_exec import exec_mcusign  # noqa: E402
from west.commands import WestCommand  # noqa: E402

DEFAULT_BUILD_DIR = 'build'

# Sub-commands that work on a build directory, and those passed as they are.
BUILD_DIR_COMMANDS = ('sign', 'doctor')
PLAIN_COMMANDS = ('getpub', 'status')

DESCRIPTION = '''\
Sign MCUboot images of a Zephyr or nRF Connect SDK build with mcusign, whose
keys may live in an HSM (pkcs11: URIs) instead of a file.

  west mcusign sign [-d BUILD_DIR] [OPTIONS]
      Sign what the build made (zephyr/zephyr.bin and .hex into
      zephyr.signed.*), with version, header and slot size, alignment and key
      read from the build; OPTIONS are `mcusign sign` options and win over
      what the build says, e.g. -k 'pkcs11:token=release;object=fw'.
  west mcusign doctor [-d BUILD_DIR] [--format json]
      Show what would be signed, with what, where each value comes from, and
      what is wrong.
  west mcusign getpub [OPTIONS]
      Export a public key for MCUboot's build (mcusign getpub).
  west mcusign status
      Show how mcusign reaches its keys (mcusign status).

BUILD_DIR: -d/--build-dir, else the build.dir-fmt configuration (default
build/) if that is a Zephyr build directory, else the current directory if it
is one. mcusign sign's own -d (--dependencies) is reached as --dependencies,
or after `--`. mcusign is $MCUSIGN, <mcusign checkout>/bin/mcusign, or the
one on PATH.
'''


class UsageError(Exception):
    """A mistake on the command line; exits 2, as argparse does."""


def split_build_dir(args):
    """Take -d/--build-dir out of args. Returns (build_dir or None, rest).
    Arguments after `--` are mcusign's, unexamined."""
    rest, build_dir = [], None
    i = 0
    while i < len(args):
        a = args[i]
        if a == '--':
            rest.extend(args[i + 1:])
            break
        if a in ('-d', '--build-dir'):
            if i + 1 >= len(args):
                raise UsageError(f'{a} needs a directory: {a} BUILD_DIR')
            build_dir = args[i + 1]
            i += 2
            continue
        if a.startswith('--build-dir='):
            build_dir = a.split('=', 1)[1]
        elif a.startswith('-d') and not a.startswith('--'):
            build_dir = a[2:].lstrip('=')
        else:
            rest.append(a)
        i += 1
    return build_dir, rest


def is_zephyr_build(path):
    """True if path holds a Zephyr build (as Zephyr's build_helpers says:
    a CMakeCache.txt with ZEPHYR_TOOLCHAIN_VARIANT), or a sysbuild one,
    whose top-level cache lacks that variable."""
    try:
        text = (Path(path) / 'CMakeCache.txt').read_text(errors='replace')
    except OSError:
        return False
    return any(line.startswith(('ZEPHYR_TOOLCHAIN_VARIANT:', 'CMAKE_PROJECT_NAME:STATIC=sysbuild_toplevel'))
               for line in text.splitlines())


def resolve_build_dir(fmt, cwd, **kwargs):
    """build.dir-fmt with what is known substituted; where a {placeholder}
    is unknown, follow the only subdirectory there is (Zephyr's guess).
    Returns None if the format cannot be resolved."""
    try:
        return str(Path(cwd) / fmt.format(**kwargs))
    except (KeyError, IndexError, ValueError):
        pass
    base = Path(cwd)
    for part in Path(fmt).parts:
        try:
            base = base / part.format(**kwargs)
            continue
        except (KeyError, IndexError, ValueError):
            pass
        # Unknown placeholder: descend while there is exactly one choice.
        while True:
            if not base.is_dir():
                return None
            dirs = [d for d in base.iterdir() if d.is_dir()]
            if len(dirs) != 1:
                return None
            base = dirs[0]
            if is_zephyr_build(base):
                return str(base)
    return str(base)


def find_build_dir(build_dir, dir_fmt, cwd):
    """The build directory west users mean: the given one; else build.dir-fmt
    (default build/) if it is a Zephyr build; else cwd if it is one; else
    the default, for mcusign to report."""
    if build_dir:
        return os.path.abspath(os.path.join(cwd, build_dir))
    default = resolve_build_dir(dir_fmt or DEFAULT_BUILD_DIR, cwd)
    if default and is_zephyr_build(default):
        return os.path.abspath(default)
    if is_zephyr_build(cwd):
        return os.path.abspath(cwd)
    if default:
        return os.path.abspath(default)
    raise UsageError(f'build.dir-fmt {dir_fmt!r} names no build directory from {cwd} '
                     'and the current directory is not one: pass -d BUILD_DIR')


def mcusign_argv(command, args, dir_fmt, cwd):
    """The mcusign command line for `west mcusign COMMAND ARGS`."""
    if command in PLAIN_COMMANDS:
        return [command] + list(args)
    if command not in BUILD_DIR_COMMANDS:
        raise UsageError(f'unknown command {command!r}: use one of '
                         + ', '.join(BUILD_DIR_COMMANDS + PLAIN_COMMANDS))
    build_dir, rest = split_build_dir(args)
    return [command, '--build-dir', find_build_dir(build_dir, dir_fmt, cwd)] + rest


class McusignCommand(WestCommand):
    def __init__(self):
        super().__init__(
            'mcusign',
            'sign MCUboot images with mcusign (keys in PEM files or PKCS#11 HSMs)',
            DESCRIPTION)

    def do_add_parser(self, parser_adder):
        parser = parser_adder.add_parser(
            self.name, help=self.help, description=self.description,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument('command', metavar='COMMAND',
                            choices=BUILD_DIR_COMMANDS + PLAIN_COMMANDS,
                            help='sign, doctor, getpub or status')
        parser.add_argument('args', nargs=argparse.REMAINDER,
                            help='options for mcusign COMMAND')
        return parser

    def _dir_fmt(self):
        # west >= 1.0 has self.config; older west a module-level config.
        try:
            return self.config.get('build.dir-fmt')
        except Exception:
            pass
        try:
            from west.configuration import config
            return config.get('build', 'dir-fmt', fallback=None)
        except Exception:
            return None

    def do_run(self, args, unknown_args):
        try:
            argv = mcusign_argv(args.command, args.args, self._dir_fmt(), os.getcwd())
        except UsageError as e:
            sys.stderr.write(f'west mcusign: error: {e}\n')
            sys.exit(2)
        env = dict(os.environ)
        try:
            topdir = self.topdir
        except Exception:  # not in a workspace, or an older west
            topdir = None
        if topdir and 'WEST_TOPDIR' not in env:
            # mcusign resolves relative key paths against it, as Zephyr does.
            env['WEST_TOPDIR'] = str(topdir)
        exec_mcusign(argv, env)
