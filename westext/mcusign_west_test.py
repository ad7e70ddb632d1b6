"""Tests of `west mcusign` (mcusign_west.py) against a stand-in for west."""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import types
import unittest
from unittest import mock

import testsupport

testsupport.install_fake_west()

import mcusign_exec  # noqa: E402
import mcusign_west  # noqa: E402


def parse(cmd, argv):
    """Parse `west mcusign ARGV` the way west does: a top-level parser with
    one sub-parser per command, made by the command's do_add_parser."""
    top = argparse.ArgumentParser(prog='west')
    sub = top.add_subparsers(dest='west_command')
    cmd.do_add_parser(sub)
    return top.parse_args(['mcusign'] + argv)


class RunTest(unittest.TestCase):
    """do_run builds the right mcusign command line and environment."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.cwd = os.path.realpath(self.tmp.name)
        old = os.getcwd()
        os.chdir(self.cwd)
        self.addCleanup(os.chdir, old)
        patcher = mock.patch.object(mcusign_west, 'exec_mcusign')
        self.exec = patcher.start()
        self.addCleanup(patcher.stop)
        self.cmd = mcusign_west.McusignCommand()

    def run_west(self, *argv, config=None, topdir=None, env=None):
        self.cmd.config = testsupport.FakeConfig(config)
        self.cmd.topdir = topdir
        environ = {k: v for k, v in os.environ.items() if k != 'WEST_TOPDIR'}
        environ.update(env or {})
        with mock.patch.dict(os.environ, environ, clear=True):
            self.cmd.do_run(parse(self.cmd, list(argv)), [])
        self.exec.assert_called_once()
        argv_, env_ = self.exec.call_args[0]
        self.exec.reset_mock()
        return argv_, env_

    def test_sign_forwards_options_and_build_dir(self):
        build = testsupport.make_build_dir(os.path.join(self.cwd, 'b'))
        argv, _ = self.run_west('sign', '-d', 'b', '-k', 'pkcs11:token=t;object=o', '--version', '1.2.3', '--confirm')
        self.assertEqual(argv, ['sign', '--build-dir', build, '-k', 'pkcs11:token=t;object=o', '--version', '1.2.3', '--confirm'])

    def test_build_dir_spellings(self):
        for spelling in (['--build-dir', 'x'], ['--build-dir=x'], ['-dx'], ['-d=x']):
            argv, _ = self.run_west('doctor', *spelling, '--format', 'json')
            self.assertEqual(argv, ['doctor', '--build-dir', os.path.join(self.cwd, 'x'), '--format', 'json'], spelling)

    def test_after_double_dash_everything_is_mcusigns(self):
        testsupport.make_build_dir(os.path.join(self.cwd, 'build'))
        argv, _ = self.run_west('sign', '-k', 'k.pem', '--', '-d', '(1,1.0.0)')
        self.assertEqual(argv, ['sign', '--build-dir', os.path.join(self.cwd, 'build'), '-k', 'k.pem', '-d', '(1,1.0.0)'])

    def test_default_build_dir(self):
        build = testsupport.make_build_dir(os.path.join(self.cwd, 'build'))
        argv, _ = self.run_west('sign')
        self.assertEqual(argv, ['sign', '--build-dir', build])

    def test_dir_fmt_config(self):
        build = testsupport.make_build_dir(os.path.join(self.cwd, 'out', 'nrf52dk'))
        testsupport.make_build_dir(os.path.join(self.cwd, 'build'))
        # A {placeholder} west sign cannot fill: the single subdirectory.
        argv, _ = self.run_west('sign', config={'build.dir-fmt': 'out/{board}'})
        self.assertEqual(argv[2], build)
        argv, _ = self.run_west('sign', config={'build.dir-fmt': 'out/nrf52dk'})
        self.assertEqual(argv[2], build)

    def test_dir_fmt_ambiguous(self):
        testsupport.make_build_dir(os.path.join(self.cwd, 'out', 'a'))
        testsupport.make_build_dir(os.path.join(self.cwd, 'out', 'b'))
        with self.assertRaises(SystemExit) as e, mock.patch('sys.stderr') as err:
            self.cmd.config = testsupport.FakeConfig({'build.dir-fmt': 'out/{board}'})
            self.cmd.do_run(parse(self.cmd, ['sign']), [])
        self.assertEqual(e.exception.code, 2)
        written = ''.join(c.args[0] for c in err.write.call_args_list)
        self.assertIn('pass -d BUILD_DIR', written)
        self.exec.assert_not_called()

    def test_current_directory_is_a_build(self):
        testsupport.make_build_dir(self.cwd)
        argv, _ = self.run_west('doctor')
        self.assertEqual(argv, ['doctor', '--build-dir', self.cwd])

    def test_sysbuild_top_level_is_a_build(self):
        build = testsupport.make_build_dir(os.path.join(self.cwd, 'build'), sysbuild=True)
        argv, _ = self.run_west('sign')
        self.assertEqual(argv[2], build)

    def test_nothing_found_leaves_the_default_for_mcusign_to_report(self):
        argv, _ = self.run_west('sign')
        self.assertEqual(argv, ['sign', '--build-dir', os.path.join(self.cwd, 'build')])

    def test_plain_commands_pass_unchanged(self):
        argv, _ = self.run_west('getpub', '-k', 'pkcs11:token=t;object=o', '-e', 'pem', '-o', 'keys/pub.pem')
        self.assertEqual(argv, ['getpub', '-k', 'pkcs11:token=t;object=o', '-e', 'pem', '-o', 'keys/pub.pem'])
        argv, _ = self.run_west('status', '-d', 'kept')
        self.assertEqual(argv, ['status', '-d', 'kept'])

    def test_west_topdir_for_key_resolution(self):
        testsupport.make_build_dir(os.path.join(self.cwd, 'build'))
        _, env = self.run_west('sign', topdir='/ws')
        self.assertEqual(env['WEST_TOPDIR'], '/ws')
        _, env = self.run_west('sign', topdir='/ws', env={'WEST_TOPDIR': '/mine'})
        self.assertEqual(env['WEST_TOPDIR'], '/mine', 'an explicit WEST_TOPDIR wins')

    def test_old_west_configuration(self):
        build = testsupport.make_build_dir(os.path.join(self.cwd, 'old'))
        configuration = types.ModuleType('west.configuration')

        class Config:
            def get(self, section, key, fallback=None):
                return 'old' if (section, key) == ('build', 'dir-fmt') else fallback
        configuration.config = Config()

        class NoConfig:
            def get(self, key):
                raise AttributeError('west < 1.0 has no self.config')
        with mock.patch.dict(sys.modules, {'west.configuration': configuration}):
            self.cmd.config = NoConfig()
            self.cmd.do_run(parse(self.cmd, ['sign']), [])
        self.assertEqual(self.exec.call_args[0][0][2], build)

    def test_usage_errors(self):
        for argv in (['sign', '-d'], ['sign', '--build-dir']):
            with self.subTest(argv=argv), self.assertRaises(SystemExit) as e, mock.patch('sys.stderr'):
                self.cmd.do_run(parse(self.cmd, argv), [])
            self.assertEqual(e.exception.code, 2)
        with self.assertRaises(SystemExit), mock.patch('sys.stderr'):
            parse(self.cmd, ['frobnicate'])


class FindMcusignTest(unittest.TestCase):
    """mcusign is $MCUSIGN, else <checkout>/bin/mcusign, else on PATH."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        d = self.tmp.name
        self.explicit = testsupport.write_fake_mcusign(d, 'explicit')
        self.checkout = os.path.join(d, 'checkout')
        os.makedirs(os.path.join(self.checkout, 'bin'))
        self.local = testsupport.write_fake_mcusign(os.path.join(self.checkout, 'bin'))
        self.pathdir = os.path.join(d, 'path')
        os.makedirs(self.pathdir)
        self.onpath = testsupport.write_fake_mcusign(self.pathdir)

    def test_order(self):
        find = mcusign_exec.find_mcusign
        env = {'MCUSIGN': self.explicit, 'PATH': self.pathdir}
        self.assertEqual(find(env, self.checkout), self.explicit)
        del env['MCUSIGN']
        self.assertEqual(find(env, self.checkout), self.local)
        self.assertEqual(find(env, os.path.join(self.tmp.name, 'elsewhere')), self.onpath)

    def test_not_found(self):
        with self.assertRaises(mcusign_exec.NotFound) as e:
            mcusign_exec.find_mcusign({'PATH': self.tmp.name}, os.path.join(self.tmp.name, 'elsewhere'))
        self.assertIn('go build -o bin/', str(e.exception))
        self.assertIn('MCUSIGN=', str(e.exception))
        with self.assertRaises(mcusign_exec.NotFound) as e:
            mcusign_exec.find_mcusign({'MCUSIGN': os.path.join(self.tmp.name, 'nope')}, self.checkout)
        self.assertIn('MCUSIGN=', str(e.exception))


# Runs `west mcusign ARGV` in a child process with the stand-in west, so the
# exec really happens and the exit status is the child's.
BOOTSTRAP = textwrap.dedent('''\
    import sys
    sys.path.insert(0, {here!r})
    import testsupport
    testsupport.install_fake_west()
    import argparse, mcusign_west
    cmd = mcusign_west.McusignCommand()
    top = argparse.ArgumentParser(prog='west')
    cmd.do_add_parser(top.add_subparsers())
    cmd.do_run(top.parse_args(['mcusign'] + sys.argv[1:]), [])
    ''').format(here=testsupport.HERE)


class ExecTest(unittest.TestCase):
    """The real exec: argv, streams and exit status reach the caller."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.fake = testsupport.write_fake_mcusign(self.tmp.name)
        self.log = os.path.join(self.tmp.name, 'log.json')
        self.build = testsupport.make_build_dir(os.path.join(os.path.realpath(self.tmp.name), 'build'))

    def west(self, *argv, rc=0, mcusign=None):
        env = dict(os.environ, MCUSIGN=mcusign or self.fake, FAKE_MCUSIGN_LOG=self.log, FAKE_MCUSIGN_RC=str(rc))
        return subprocess.run([sys.executable, '-c', BOOTSTRAP] + list(argv), cwd=self.tmp.name,
                              env=env, capture_output=True, text=True, timeout=60)

    def test_exit_status_and_streams_pass_through(self):
        for rc in (0, 1, 2, 3):
            p = self.west('sign', '-k', 'a key.pem', rc=rc)
            self.assertEqual(p.returncode, rc, p.stderr)
            self.assertEqual(p.stdout, 'fake mcusign stdout\n')
            self.assertEqual(p.stderr, 'fake mcusign stderr\n')
            log = testsupport.read_log(self.log)
            self.assertEqual(log['argv'], ['sign', '--build-dir', self.build, '-k', 'a key.pem'])

    def test_mcusign_missing(self):
        p = self.west('status', mcusign=os.path.join(self.tmp.name, 'nope'))
        self.assertEqual(p.returncode, mcusign_exec.NOT_FOUND)
        self.assertEqual(p.stderr.count('\n'), 1, p.stderr)
        self.assertIn('MCUSIGN=', p.stderr)


if __name__ == '__main__':
    unittest.main()
