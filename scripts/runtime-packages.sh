#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries BINARY links
# against, one per line: what a runtime image must install (the Dockerfile's
# second stage). Fails if a library belongs to no package.
set -euo pipefail
binary="${1:?usage: runtime-packages.sh BINARY}"
mapfile -t libs < <(ldd "$binary" | awk '/=> \// {print $3}')
# One dpkg query for all of them (with /usr merged, a library may be
# registered under /lib or /usr/lib: both spellings are asked for).
paths=()
for lib in "${libs[@]}"; do
  real="$(readlink -f "$lib")"
  paths+=("$real" "${real#/usr}" "/usr${real#/usr}")
done
owners="$(dpkg -S "${paths[@]}" 2>/dev/null || true)"
owned="$(awk -F': ' '{print $NF}' <<<"$owners")"
status=0
for lib in "${libs[@]}"; do
  real="$(readlink -f "$lib")"
  base="${real#/usr}"
  if ! grep -qxF -e "$base" -e "/usr$base" <<<"$owned"; then
    echo "runtime-packages: no package holds $lib" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] || exit 1
cut -d: -f1 <<<"$owners" | sort -u
