#!/usr/bin/env bash
# Installs what mcusign's build and tests need on Debian/Ubuntu: SoftHSM2
# (the PKCS#11 token every test signs with) and xz-utils. Go must be on PATH.
set -euo pipefail
need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v xz >/dev/null || need+=(xz-utils)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
	sudo=""
	[[ $(id -u) == 0 ]] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "install-deps: Go is not on PATH (need Go >= 1.25)" >&2; exit 1; }
go mod download
