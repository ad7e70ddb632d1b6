// Package zephyr reads a Zephyr or nRF Connect SDK build directory and
// infers what `imgtool sign` needs for it: version, header size, slot size,
// alignment, key, and which files to sign into which outputs. It is what
// `west sign -t imgtool` and Zephyr's build-time signing (cmake/mcuboot.cmake)
// compute, and what NCS's partition-manager signing computes, without Python,
// west or edt.pickle: only zephyr/.config, CMakeCache.txt, the generated
// devicetree header and the partition manager outputs.
//
// Every inferred value carries where it came from, so `mcusign doctor` can
// explain it, and values that cannot be inferred carry an error that names
// the fix, so an explicit flag can stand in for them.
//
// Recorded absolute paths (CMakeCache.txt, domains.yaml) are often stale: a
// build directory may have been moved, copied out of CI or mounted elsewhere.
// Files are therefore found relative to the directory given; recorded paths
// are used only where Zephyr itself uses them (the key search).
//
// This package owns parsing and inference only. It must not import cmd/ or
// know about flags; the command line maps a Build to signer options.
package zephyr
