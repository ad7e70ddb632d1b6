package signer

import (
	"fmt"
	"regexp"
	"strconv"
)

// Version is an image version as stored in the header: maj.min.rev+build.
type Version struct {
	Major, Minor uint8
	Revision     uint16
	Build        uint32
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d+%d", v.Major, v.Minor, v.Revision, v.Build)
}

// imgtool's grammar: no leading zeros, later parts optional.
var versionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\+(0|[1-9][0-9]*))?)?)?$`)

// ParseVersion parses "maj[.min[.rev[+build]]]" exactly as imgtool does, and
// also rejects values the header cannot hold (imgtool crashes on those).
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("invalid version %q: use maj.min.rev+build with later parts optional, no leading zeros (e.g. 1.2.3+4)", s)
	}
	limits := []uint64{0xff, 0xff, 0xffff, 0xffffffff}
	names := []string{"major", "minor", "revision", "build"}
	var n [4]uint64
	for i := range n {
		if m[i+1] == "" {
			continue
		}
		x, err := strconv.ParseUint(m[i+1], 10, 64)
		if err != nil || x > limits[i] {
			return Version{}, fmt.Errorf("invalid version %q: %s must be at most %d", s, names[i], limits[i])
		}
		n[i] = x
	}
	return Version{uint8(n[0]), uint8(n[1]), uint16(n[2]), uint32(n[3])}, nil
}

// AutoSecurityCounter is imgtool's `-s auto`: the version without its build number.
func AutoSecurityCounter(v Version) uint32 {
	return uint32(v.Major)<<24 | uint32(v.Minor)<<16 | uint32(v.Revision)
}
