#!/usr/bin/env bash
# Installs the Debian packages stepfs needs, only those that are missing.
#   scripts/deps.sh build   what building and running stepfs needs
#   scripts/deps.sh test    that, plus what the test suite needs
set -euo pipefail

build_packages=(make gcc pkg-config libc6-dev libfuse3-dev fuse3 libjansson-dev
	libzstd-dev libyaml-dev zstd)
test_packages=(python3 clang libclang-rt-14-dev perl)

want=("${build_packages[@]}")
if [ "${1:-build}" = test ]; then
	want+=("${test_packages[@]}")
fi

missing=()
for pkg in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "stepfs: missing Debian packages: ${missing[*]}" >&2
		echo "stepfs: run this as root, or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "stepfs: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# FUSE needs its device; a container may lack the module but still have /dev/fuse.
if [ ! -e /dev/fuse ]; then
	modprobe fuse 2>/dev/null || true
fi
if [ ! -e /dev/fuse ]; then
	echo "stepfs: /dev/fuse is missing: FUSE is not available on this machine" >&2
	exit 1
fi
