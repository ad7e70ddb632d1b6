package main

import (
	"math"
	"strings"
	"testing"
)

// Two interleaved rounds of a row, its baseline and its round-trip floor.
const twoRounds = `
goos: linux
BenchmarkSignRate/key=rsa-2048/c=2/path=raw-2      1000  961724 ns/op  1810 cpu-µs/op  1000 sig/s
BenchmarkSignRate/key=rsa-2048/c=2/path=trip-2   5000  198080 ns/op   275 cpu-µs/op  4000 trips/s
BenchmarkSignRate/key=rsa-2048/c=2/path=daemon-2    450 2250674 ns/op  3236 cpu-µs/op   400 sig/s
BenchmarkSignRate/key=rsa-2048/c=2/path=raw-2      1000  961724 ns/op  1810 cpu-µs/op  800 sig/s
BenchmarkSignRate/key=rsa-2048/c=2/path=trip-2   5000  198080 ns/op   275 cpu-µs/op  8000 trips/s
BenchmarkSignRate/key=rsa-2048/c=2/path=daemon-2    450 2250674 ns/op  3236 cpu-µs/op   600 sig/s
`

func TestRatiosAndCeiling(t *testing.T) {
	res, err := parse(strings.NewReader(twoRounds))
	if err != nil {
		t.Fatal(err)
	}
	const base = "BenchmarkSignRate/key=rsa-2048/c=2/path="
	near := func(name string, got, want float64, ok bool) {
		t.Helper()
		if !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v (ok %v), want %v", name, got, ok, want)
		}
	}
	v, ok := res.get(base+"raw", "sig/s")
	near("median raw rate", v, 900, ok)
	// Per round: 400/1000 and 600/800; the median of the rounds' ratios,
	// not the ratio of the medians (500/900).
	q, ok := res.ratio(base+"daemon", base+"raw", "sig/s")
	near("daemon/raw", q, (0.4+0.75)/2, ok)
	// Per round: 1/(1+1000/4000) = 0.8 and 1/(1+800/8000) = 10/11.
	c, ok := res.ceiling(base+"raw", base+"trip")
	near("ceiling", c, (0.8+10.0/11)/2, ok)
	if _, ok := res.ceiling(base+"raw", base+"missing"); ok {
		t.Error("a ceiling without round trips measured")
	}
}
