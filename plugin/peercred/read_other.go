//go:build !linux

package peercred

import (
	"errors"
	"net"
)

func read(net.Conn) (*Cred, error) {
	return nil, errors.New("peer credentials (SO_PEERCRED) are only implemented on Linux")
}
