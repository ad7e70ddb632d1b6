package daemon

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mcusign/mcusign/plugin/peercred"
)

// Access is a standing daemon's allow list: a peer may connect if its uid
// is listed, or its primary or any supplementary group is.
type Access struct {
	UIDs []uint32
	GIDs []uint32
}

// Check decides whether c may connect.
func (a Access) Check(c *peercred.Cred) error {
	if c == nil {
		return fmt.Errorf("the peer's credentials are unknown")
	}
	if slices.Contains(a.UIDs, c.UID) {
		return nil
	}
	if slices.Contains(a.GIDs, c.GID) {
		return nil
	}
	for _, g := range c.Groups {
		if slices.Contains(a.GIDs, g) {
			return nil
		}
	}
	return fmt.Errorf("uid %d (gid %d) is not allowed: mcusignd admits %s", c.UID, c.GID, a)
}

func (a Access) String() string {
	var parts []string
	if len(a.UIDs) > 0 {
		parts = append(parts, "uid "+join(a.UIDs))
	}
	if len(a.GIDs) > 0 {
		parts = append(parts, "gid "+join(a.GIDs))
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, " and ")
}

func join(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, ",")
}
