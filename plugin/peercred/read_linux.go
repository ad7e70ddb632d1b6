package peercred

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

func read(conn net.Conn) (*Cred, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("peer credentials need a unix socket connection, not a %T", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var uc *unix.Ucred
	var groups []uint32
	var serr error
	err = raw.Control(func(fd uintptr) {
		uc, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr == nil {
			groups = peerGroups(int(fd))
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("reading the peer credentials (SO_PEERCRED): %w", err)
	}
	return &Cred{UID: uc.Uid, GID: uc.Gid, PID: uc.Pid, Groups: groups}, nil
}
