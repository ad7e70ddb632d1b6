#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install dependencies, build
# mcusign, create the SoftHSM development token, sign an image with a key
# that lives only in the token, verify it, and export the public key the
# MCUboot build needs. Outputs go to ./demo-out (override with DEMO_OUT).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${DEMO_OUT:-$root/demo-out}

echo "== install dependencies"
scripts/install-deps.sh

echo "== build"
mkdir -p bin "$out"
go build -o bin/ ./cmd/...
export PATH=$root/bin:$PATH

echo "== SoftHSM development token"
scripts/dev-token.sh >/dev/null
dir=${MCUSIGN_DEV_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/mcusign/softhsm}
export SOFTHSM2_CONF=$dir/softhsm2.conf
export MCUSIGN_PIN_FILE=$dir/user.pin   # the PIN stays in a file, never in argv
key='pkcs11:token=mcusign-dev;object=ed25519'

echo "== sign (key: $key)"
app=testdata/vectors/inputs/app-100k.bin
mcusign sign -k "$key" --version 1.2.3+4 --header-size 0x200 --align 4 \
	--slot-size 0x60000 --pad-header "$app" "$out/app.signed.bin"

echo "== export the public key for MCUboot"
mcusign getpub -k "$key" -e pem -o "$out/mcuboot-pub.pem"
mcusign getpub -k "$key" -o "$out/autogen-pubkey.c"

echo "== verify with the exported public key"
mcusign verify -k "$out/mcuboot-pub.pem" "$out/app.signed.bin"
mcusign keyinfo -k "$key" | sed -n '1,3p;7,8p'
echo "== done: $out/app.signed.bin, $out/mcuboot-pub.pem, $out/autogen-pubkey.c"
