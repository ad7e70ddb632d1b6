#!/usr/bin/env bash
# Creates mcusign's SoftHSM2 development token "mcusign-dev" with one key of
# each signing type (labels rsa-2048, rsa-3072, ecdsa-p256, ecdsa-p384,
# ed25519), in a private SoftHSM directory that leaves the system's tokens
# alone:
#   ${MCUSIGN_DEV_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/mcusign/softhsm}
#     softhsm2.conf   from the top-level softhsm.conf template
#     tokens/         SoftHSM token directory
#     user.pin        user PIN, random, mode 0600 (use as MCUSIGN_PIN_FILE)
#     so-pin          SO PIN, random, mode 0600
# Running it again keeps the existing token, PINs and keys.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${MCUSIGN_DEV_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/mcusign/softhsm}
token=mcusign-dev

command -v softhsm2-util >/dev/null || { echo "dev-token: SoftHSM2 is not installed; run scripts/install-deps.sh (or apt install softhsm2)" >&2; exit 1; }

umask 077
mkdir -p "$dir/tokens"
chmod 700 "$dir"
conf=$dir/softhsm2.conf
if [[ ! -f $conf ]]; then
	[[ $dir != *'|'* ]] || { echo "dev-token: directory name must not contain '|': $dir" >&2; exit 1; }
	sed "s|@TOKENDIR@|$dir/tokens|" "$root/softhsm.conf" >"$conf"
fi

# PINs: 24 random hex digits each, written once.
newpin() {
	[[ -s $1 ]] && return
	od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$1.tmp"
	echo >>"$1.tmp"
	mv "$1.tmp" "$1"
}
newpin "$dir/user.pin"
newpin "$dir/so-pin"
chmod 600 "$dir/user.pin" "$dir/so-pin"

# The PINs go through files, never the command line (ps would show them).
export SOFTHSM2_CONF=$conf
(cd "$root" && go run ./scripts/devtoken -token "$token" -pin-file "$dir/user.pin" -so-pin-file "$dir/so-pin")

cat <<EOT

Development token "$token" is ready. To use it:
  export SOFTHSM2_CONF=$conf
  export MCUSIGN_PIN_FILE=$dir/user.pin
  mcusign sign -k 'pkcs11:token=$token;object=ecdsa-p256' ...
The user PIN is in $dir/user.pin, the SO PIN in $dir/so-pin (both mode 0600).
EOT
