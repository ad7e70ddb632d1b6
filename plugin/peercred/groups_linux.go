//go:build linux && !386

package peercred

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerGroups reads SO_PEERGROUPS (Linux 4.13+): the peer's supplementary
// groups as of connect(), which /proc/PID/status could not promise.
func peerGroups(fd int) []uint32 {
	buf := make([]uint32, 64)
	for range 4 {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch e {
		case 0:
			return buf[:n/4]
		case unix.ERANGE: // n now holds the size needed
			buf = make([]uint32, n/4+1)
			continue
		}
		return nil
	}
	return nil
}
