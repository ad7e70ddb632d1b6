#!/usr/bin/env bash
# Runs mcusign's performance benchmarks and prints one table (the one in
# docs/performance.md): every row beside a baseline measured in the same
# run, as a ratio. Takes a few minutes; needs SoftHSM2 and openssl.
#
#   scripts/bench.sh                 # 3 rounds
#   ROUNDS=1 BENCHTIME=500ms scripts/bench.sh
#   RAW=bench.txt scripts/bench.sh   # also keep the raw go test output
#
# The raw output is benchstat-friendly; sub-benchmarks differ in one name
# component, so e.g. `benchstat -col /path bench.txt` prints daemon/raw.
# Rounds are interleaved (each round runs every benchmark once), so that a
# change of load on a shared machine hits baseline and subject alike.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
benchtime=${BENCHTIME:-1s}

for tool in softhsm2-util openssl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed; run scripts/install-deps.sh" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
raw=${RAW:-$tmp/bench.txt}
: >"$raw"

echo "building the benchmark binaries..." >&2
go test -c -o "$tmp/signer.test" ./signer
go test -c -o "$tmp/audit.test" ./cmd/internal/daemon/audit
go test -c -o "$tmp/mcusign.test" ./cmd/mcusign

run() { # dir binary pattern benchtime
	if ! (cd "$1" && "$tmp/$2" -test.run '^$' -test.bench "$3" -test.benchtime "$4" -test.timeout 20m) >"$tmp/out.txt" 2>&1; then
		cat "$tmp/out.txt" >&2
		echo "bench: $2 -test.bench '$3' failed" >&2
		exit 1
	fi
	cat "$tmp/out.txt" >>"$raw"
	grep -E '^Benchmark' "$tmp/out.txt" >&2 || true
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
for r in $(seq "$rounds"); do
	echo "round $r of $rounds" >&2
	run signer signer.test '^BenchmarkHash$' 10x
	run cmd/internal/daemon/audit audit.test '^BenchmarkAppend$' "$benchtime"
	run cmd/mcusign mcusign.test '^Benchmark(SignRate|SignCommand|PeakRSS)$' "$benchtime"
done
elapsed=$(($(date +%s) - start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
shani=no
grep -qw sha_ni /proc/cpuinfo && shani=yes
cat <<EOT
## Machine

| | |
|---|---|
| CPUs (nproc) | $(nproc) |
| CPU | $cpu (SHA extensions: $shani) |
| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |
| kernel | $(uname -sr) |
| SoftHSM | $(softhsm2-util --version) |
| OpenSSL | $(openssl version) |
| Go | $(go env GOVERSION) |
| temporary directory (audit log) | $(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $2}') on $(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $1}') |
| load average (1, 5, 15 min) | before: $load_before; after: $load_after |
| run | $rounds round(s), -benchtime $benchtime, ${elapsed} s, $(date -u +%Y-%m-%dT%H:%MZ) |

EOT
go run ./scripts/benchtable <"$raw"
