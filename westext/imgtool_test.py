"""Tests of the imgtool shim (imgtool.py): what Zephyr 4.x's build runs as
`${PYTHON_EXECUTABLE} ${IMGTOOL} sign ...` reaches mcusign unchanged."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import mcusign_exec
import testsupport

SHIM = os.path.join(testsupport.HERE, 'imgtool.py')


class ShimTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.fake = testsupport.write_fake_mcusign(self.tmp.name)
        self.log = os.path.join(self.tmp.name, 'log.json')

    def shim(self, *argv, rc=0, shim=SHIM, mcusign=None):
        env = dict(os.environ, MCUSIGN=mcusign or self.fake, FAKE_MCUSIGN_LOG=self.log, FAKE_MCUSIGN_RC=str(rc))
        return subprocess.run([sys.executable, shim] + list(argv), cwd=self.tmp.name, env=env,
                              capture_output=True, text=True, timeout=60)

    def test_argv_exactly(self):
        # What cmake/mcuboot.cmake passes (4.0, overwrite-only board), plus
        # arguments a shell would have mangled.
        argv = ['sign', '--version', '0.9.12+1700', '--header-size', '0x400', '--slot-size', '393216',
                '--overwrite-only', '--align', '1', '--key', 'pkcs11:token=dev;object=fw key',
                '--custom-tlv', '0xa0', '', '/b/zephyr/zephyr.bin', '/b/zephyr/zephyr.signed.bin']
        p = self.shim(*argv)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(testsupport.read_log(self.log)['argv'], argv)
        self.assertEqual(testsupport.read_log(self.log)['cwd'], os.path.realpath(self.tmp.name))

    def test_exit_status_and_streams(self):
        for rc in (0, 1, 2, 42):
            p = self.shim('sign', rc=rc)
            self.assertEqual(p.returncode, rc)
            self.assertEqual(p.stdout, 'fake mcusign stdout\n')
            self.assertEqual(p.stderr, 'fake mcusign stderr\n')

    def test_symlinked_shim(self):
        link = os.path.join(self.tmp.name, 'imgtool.py')
        os.symlink(SHIM, link)
        p = self.shim('version', shim=link)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(testsupport.read_log(self.log)['argv'], ['version'])

    def test_mcusign_missing(self):
        p = self.shim('sign', mcusign=os.path.join(self.tmp.name, 'missing'))
        self.assertEqual(p.returncode, mcusign_exec.NOT_FOUND)
        self.assertEqual(p.stderr.count('\n'), 1, p.stderr)
        self.assertTrue(p.stderr.startswith('mcusign: error: MCUSIGN='), p.stderr)


class RealMcusignTest(unittest.TestCase):
    """The shim in front of the real mcusign, with Zephyr 4.x's argv."""

    @classmethod
    def setUpClass(cls):
        if shutil.which('go') is None:
            raise unittest.SkipTest('go is not installed: cannot build mcusign')
        cls.tmp = tempfile.TemporaryDirectory()
        cls.mcusign = os.path.join(cls.tmp.name, 'mcusign')
        subprocess.run(['go', 'build', '-o', cls.mcusign, './cmd/mcusign'], cwd=testsupport.CHECKOUT,
                       check=True, timeout=900)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.work = tempfile.TemporaryDirectory()
        self.addCleanup(self.work.cleanup)
        # A Zephyr app binary with 0x200 bytes reserved for the header
        # (the legacy fixture's slot is 421888 bytes).
        shutil.copy(os.path.join(testsupport.CHECKOUT, 'testdata/zephyr-builds/legacy-2.5-image-labels/zephyr/zephyr.bin'),
                    os.path.join(self.work.name, 'zephyr.bin'))
        self.key = os.path.join(testsupport.CHECKOUT, 'testdata/vectors/keys/ed25519.pem')

    def run_shim(self, *argv):
        env = dict(os.environ, MCUSIGN=self.mcusign)
        return subprocess.run([sys.executable, SHIM] + list(argv), cwd=self.work.name, env=env,
                              capture_output=True, text=True, timeout=120)

    def test_zephyr4_build_time_signing(self):
        p = self.run_shim('sign', '--version', '0.0.0+0', '--header-size', '0x200', '--slot-size', '421888',
                          '--align', '4', '--key', self.key, 'zephyr.bin', 'zephyr.signed.bin')
        self.assertEqual(p.returncode, 0, p.stderr)
        v = subprocess.run([self.mcusign, 'verify', '-k', self.key, 'zephyr.signed.bin'], cwd=self.work.name,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertIn('Image was correctly validated', v.stdout)

    def test_failure_passes_through(self):
        p = self.run_shim('sign', '--version', '0.0.0+0', '--header-size', '0', '--slot-size', '421888',
                          '--align', '4', '--key', self.key, 'zephyr.bin', 'zephyr.signed.bin')
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr.count('\n'), 1, p.stderr)
        self.assertIn('CONFIG_BOOTLOADER_MCUBOOT=y', p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.work.name, 'zephyr.signed.bin')))


if __name__ == '__main__':
    unittest.main()
