// Command benchtable turns the output of scripts/bench.sh's benchmark
// rounds (go test -bench, any number of rounds) into the table of
// docs/performance.md: the median of every metric over the rounds, each
// row beside the baseline measured in the same run, the ratio (the median
// of the rounds' ratios: each round runs a row and its baseline under the
// same load), and the target it is held to.
//
//	go run ./scripts/benchtable < bench.txt
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// results maps a benchmark name (without the -GOMAXPROCS suffix) and a
// unit to the values of the rounds.
type results map[string]map[string][]float64

var procSuffix = regexp.MustCompile(`-\d+$`)

func parse(r io.Reader) (results, error) {
	res := results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		if res[name] == nil {
			res[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res[name][f[i+1]] = append(res[name][f[i+1]], v)
		}
	}
	return res, sc.Err()
}

// get is the median of a metric over the rounds, and whether it was
// measured at all.
func (r results) get(name, unit string) (float64, bool) {
	vs := r[name][unit]
	if len(vs) == 0 {
		return 0, false
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func (r results) rounds(name, unit string) int { return len(r[name][unit]) }

// ratio is the median over the rounds of a/b, each round's a divided by
// the same round's b (the rounds are interleaved, so a row and its
// baseline ran under the same load); with unequal counts (a benchmark
// failed in some round) it falls back to the ratio of the medians.
func (r results) ratio(a, b, unit string) (float64, bool) {
	as, bs := r[a][unit], r[b][unit]
	if len(as) == 0 || len(bs) == 0 {
		return 0, false
	}
	if len(as) != len(bs) {
		ma, _ := r.get(a, unit)
		mb, _ := r.get(b, unit)
		return ma / mb, mb != 0
	}
	var q []float64
	for i := range as {
		if bs[i] != 0 {
			q = append(q, as[i]/bs[i])
		}
	}
	if len(q) == 0 {
		return 0, false
	}
	sort.Float64s(q)
	if len(q)%2 == 1 {
		return q[len(q)/2], true
	}
	return (q[len(q)/2-1] + q[len(q)/2]) / 2, true
}

// ceiling estimates the highest daemon/raw ratio a signing path that adds
// one round trip per signature could reach: the time per operation of a
// raw signature and of a bare round trip, each measured alone at the same
// concurrency on the same machine, add up when every signature needs both
// and both are bound by the same CPUs, so the rate is at most
// 1/(1/raw + 1/trips) and the ratio 1/(1 + raw/trips). Median over the
// rounds, like ratio.
func (r results) ceiling(raw, trips string) (float64, bool) {
	as, bs := r[raw]["sig/s"], r[trips]["trips/s"]
	if len(as) == 0 || len(as) != len(bs) {
		return 0, false
	}
	q := make([]float64, len(as))
	for i := range as {
		q[i] = 1 / (1 + as[i]/bs[i])
	}
	sort.Float64s(q)
	if len(q)%2 == 1 {
		return q[len(q)/2], true
	}
	return (q[len(q)/2-1] + q[len(q)/2]) / 2, true
}

// num formats a value with about three significant digits.
func num(v float64, ok bool) string {
	if !ok {
		return "–"
	}
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func pct(q float64, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", 100*q)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

var signKeys = []string{"rsa-2048", "ecdsa-p256", "ecdsa-p384", "ed25519"}

// rateTarget is the target for the daemon/raw ratio at c=2.
var rateTarget = map[string]float64{"rsa-2048": 0.9, "ecdsa-p384": 0.9, "ecdsa-p256": 0.6, "ed25519": 0.6}

func main() {
	res, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	w := os.Stdout
	var summary []string

	fmt.Fprintln(w, "### Signing rate: daemon end to end vs raw PKCS#11 (64 KiB images)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| key | c | raw sig/s | daemon sig/s | daemon/raw | target (c=2) | bare round trips/s | ceiling: raw + one round trip | CPU µs/sig raw | CPU µs/sig daemon | CPU µs per round trip | daemon, audit on tmpfs sig/s (diagnostic) | tmpfs/raw |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range signKeys {
		for _, c := range []string{"1", "2", "8"} {
			base := "BenchmarkSignRate/key=" + k + "/c=" + c + "/path="
			raw, rok := res.get(base+"raw", "sig/s")
			d, dok := res.get(base+"daemon", "sig/s")
			tf, tok := res.get(base+"daemon-tmpfs", "sig/s")
			rc, rcok := res.get(base+"raw", "cpu-µs/op")
			dc, dcok := res.get(base+"daemon", "cpu-µs/op")
			trips, pok := res.get(base+"trip", "trips/s")
			pc, pcok := res.get(base+"trip", "cpu-µs/op")
			q, qok := res.ratio(base+"daemon", base+"raw", "sig/s")
			tq, tqok := res.ratio(base+"daemon-tmpfs", base+"raw", "sig/s")
			ceil, cok := res.ceiling(base+"raw", base+"trip")
			target := ""
			if c == "2" && qok {
				t := rateTarget[k]
				met := q >= t
				target = fmt.Sprintf("≥ %.0f %%: %s", 100*t, verdict(met))
				summary = append(summary, fmt.Sprintf("daemon/raw %s c=2 %s (target ≥ %.0f %%, ceiling over this transport %s): %s", k, pct(q, true), 100*t, pct(ceil, cok), verdict(met)))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k, c, num(raw, rok), num(d, dok), pct(q, qok), target,
				num(trips, pok), pct(ceil, cok), num(rc, rcok), num(dc, dcok), num(pc, pcok), num(tf, tok), pct(tq, tqok))
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Audit log: fsynced records per second, concurrent writers (group commit)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| writers | records/s | vs 1 writer (one fsync per record) | mean time per record |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, c := range []string{"1", "2", "8"} {
		v, ok := res.get("BenchmarkAppend/c="+c, "records/s")
		q, qok := res.ratio("BenchmarkAppend/c="+c, "BenchmarkAppend/c=1", "records/s")
		ms, x := "–", "–"
		if ok && v > 0 {
			ms = num(1000/v, true) + " ms"
		}
		if qok {
			x = fmt.Sprintf("× %.2f", q)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c, num(v, ok), x, ms)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Image hashing, SHA-256 of 64 MiB")
	fmt.Fprintln(w)
	eng, eok := res.get("BenchmarkHash/impl=engine", "MB/s")
	ossl, ook := res.get("BenchmarkHash/impl=openssl", "MB/s")
	engc, ecok := res.get("BenchmarkHash/impl=engine", "cpu-MB/s")
	osslc, ocok := res.get("BenchmarkHash/impl=openssl", "cpu-MB/s")
	hq, hqok := res.ratio("BenchmarkHash/impl=engine", "BenchmarkHash/impl=openssl", "MB/s")
	hcq, hcqok := res.ratio("BenchmarkHash/impl=engine", "BenchmarkHash/impl=openssl", "cpu-MB/s")
	hashMet := hqok && hq >= 0.9
	fmt.Fprintln(w, "| | MB/s (wall) | MB/s (CPU time) | vs openssl (wall) | vs openssl (CPU time) | target |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	fmt.Fprintf(w, "| mcusign engine | %s | %s | %s | %s | ≥ 90 %%: %s |\n", num(eng, eok), num(engc, ecok), pct(hq, hqok), pct(hcq, hcqok), verdict(hashMet))
	fmt.Fprintf(w, "| `openssl dgst -sha256` | %s | %s | 100 %% | 100 %% | |\n", num(ossl, ook), num(osslc, ocok))
	fmt.Fprintln(w)
	summary = append(summary, fmt.Sprintf("hashing vs openssl %s (target ≥ 90 %%): %s", pct(hq, hqok), verdict(hashMet)))

	fmt.Fprintln(w, "### `mcusign sign` of a 1 MiB image (ECDSA P-256), medians in ms")
	fmt.Fprintln(w)
	phases := []struct{ unit, title string }{
		{"start", "start"}, {"read", "read"}, {"connect", "connect ‖"}, {"lookup", "key lookup ‖"}, {"key-wait", "key wait"}, {"hash", "hash"},
		{"upload", "upload"}, {"check", "daemon check"}, {"sign", "sign"}, {"audit", "audit"}, {"rpc", "rpc rest"},
		{"verify", "verify"}, {"write", "write"}, {"exit", "exit"},
	}
	fmt.Fprint(w, "| key | wall |")
	for _, p := range phases {
		fmt.Fprintf(w, " %s |", p.title)
	}
	fmt.Fprintln(w, " connect + RPC overhead |")
	fmt.Fprint(w, "|---|---|")
	for range phases {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w, "---|")
	for _, k := range []struct{ name, title string }{{"file", "PEM file (baseline)"}, {"daemon", "token via standing mcusignd"}} {
		name := "BenchmarkSignCommand/key=" + k.name
		wall, wok := res.get(name, "wall-ms")
		fmt.Fprintf(w, "| %s | %s |", k.title, num(wall, wok))
		for _, p := range phases {
			v, ok := res.get(name, p.unit+"-ms")
			fmt.Fprintf(w, " %s |", num(v, ok))
		}
		over := 0.0
		// Connecting and the key lookup run while the input is read; what
		// they add to the command is the wait for the key after the read.
		for _, p := range []string{"key-wait", "upload", "rpc"} {
			v, _ := res.get(name, p+"-ms")
			over += v
		}
		if k.name == "daemon" {
			met := wok && over <= 2
			fmt.Fprintf(w, " %s (target ≤ 2 ms: %s) |\n", num(over, true), verdict(met))
			summary = append(summary, fmt.Sprintf("connect + RPC overhead of mcusign sign %s ms (target ≤ 2 ms): %s", num(over, true), verdict(met)))
		} else {
			fmt.Fprintln(w, " – |")
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Peak RSS of `mcusign sign` (PEM key, --pad)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| image | peak RSS MiB | × image size | target | |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, s := range []string{"4KiB", "64MiB"} {
		name := "BenchmarkPeakRSS/size=" + s
		peak, pok := res.get(name, "peak-MiB")
		x, xok := res.get(name, "x-image")
		if s == "64MiB" {
			met := pok && peak <= 1.25*64+32
			fmt.Fprintf(w, "| %s | %s | %s | ≤ 1.25 × 64 + 32 = 112 MiB | %s |\n", s, num(peak, pok), num(x, xok), verdict(met))
			summary = append(summary, fmt.Sprintf("peak RSS for 64 MiB %s MiB (target ≤ 112 MiB): %s", num(peak, pok), verdict(met)))
		} else {
			fmt.Fprintf(w, "| %s (the process's floor) | %s | – | | |\n", s, num(peak, pok))
		}
	}
	fmt.Fprintln(w)

	n := 0
	for name := range res {
		for unit := range res[name] {
			n = max(n, res.rounds(name, unit))
		}
	}
	fmt.Fprintf(w, "Medians of %d round(s).\n\n", n)
	fmt.Fprintln(w, "Targets:")
	for _, s := range summary {
		fmt.Fprintln(w, "- "+s)
	}
}
