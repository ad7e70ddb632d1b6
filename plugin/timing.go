package plugin

import (
	"context"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
)

// The metadata keys of SignTiming: a client sends timingRequest with its
// Sign call, the server answers with timingTrailer.
const (
	timingRequest = "mcusign-timing-request"
	timingTrailer = "mcusign-timing"
)

type timingKey struct{}

// WithSignTiming returns a context for Key.Sign that asks the daemon where
// the request's time went and stores the answer in t (left zero by a
// daemon that does not say).
func WithSignTiming(ctx context.Context, t *SignTiming) context.Context {
	return context.WithValue(ctx, timingKey{}, t)
}

func signTimingFrom(ctx context.Context) *SignTiming {
	t, _ := ctx.Value(timingKey{}).(*SignTiming)
	return t
}

// wantsTiming reports whether a server call's client asked for SignTiming.
func wantsTiming(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(timingRequest)) > 0
}

func (t *SignTiming) fields() []struct {
	name string
	d    *time.Duration
} {
	return []struct {
		name string
		d    *time.Duration
	}{{"receive", &t.Receive}, {"hash", &t.Hash}, {"queue", &t.Queue}, {"token", &t.Token}, {"audit", &t.Audit}}
}

// encode renders t as "receive=NS hash=NS ... via=file" (nanoseconds).
func (t SignTiming) encode() string {
	var b strings.Builder
	for i, f := range t.fields() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.name + "=" + strconv.FormatInt(int64(*f.d), 10))
	}
	if t.Via != "" {
		b.WriteString(" via=" + t.Via)
	}
	return b.String()
}

// decode reads what encode wrote; unknown or malformed fields are skipped.
func (t *SignTiming) decode(s string) {
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		if k == "via" {
			t.Via = v
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		for _, f := range t.fields() {
			if f.name == k {
				*f.d = time.Duration(n)
			}
		}
	}
}
