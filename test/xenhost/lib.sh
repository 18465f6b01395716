# shellcheck shell=bash disable=SC2034
# Shared helpers for the xenhost scripts (sourced, not executed).

xh_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
xh_repo=$(cd "$xh_dir/../.." && pwd)
# Outside the repo, so cached images survive `git clean` and are shared between checkouts.
xh_cache=${KRATA_CACHE:-$HOME/.cache/krata}/xenhost

xh_log() { printf 'xenhost: %s\n' "$*" >&2; }
xh_die() { xh_log "error: $*"; exit 1; }

# Root-only commands; on a non-root CI runner fall back to sudo.
xh_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

xh_apt_updated=
xh_apt_update() {
  [ -n "$xh_apt_updated" ] && return 0
  xh_log "apt-get update"
  xh_root apt-get update -qq -o DPkg::Lock::Timeout=300 >&2 || return 1
  xh_apt_updated=1
}

# xh_require CMD:PACKAGE ... — install (no recommends) the packages whose command is missing,
# so a fresh CI machine needs nothing but Debian apt sources.
xh_require() {
  local spec missing=()
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  xh_log "installing host packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local install=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300)
  xh_root "${install[@]}" "${missing[@]}" >&2 \
    || { xh_apt_update && xh_root "${install[@]}" "${missing[@]}" >&2; } \
    || xh_die "could not install ${missing[*]}"
}

# xh_kill_tree PID SIGNAL — signal a process and all its descendants (children first are
# collected before the parent dies, so reparenting cannot hide them).
xh_kill_tree() {
  local pid=$1 sig=$2 c
  for c in $(pgrep -P "$pid" 2>/dev/null); do xh_kill_tree "$c" "$sig"; done
  kill "-$sig" "$pid" 2>/dev/null || true
}
