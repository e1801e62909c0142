# Shared by the project's scripts: install what is missing, skip what is there.
# Works on a fresh Debian/Ubuntu machine with only the Rust toolchain, as root or with sudo.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Outside the clone, so repeated runs (and fresh clones) on one machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/redshift-etl/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else say "need root to run: $*"; return 1; fi
}

APT_UPDATED=
apt_install() {
  # apt_install pkg... : installs the Debian packages that are not installed yet.
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "please install: ${missing[*]} (no apt-get on this machine)"; return 1
  fi
  say "installing ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

have_pg_server() {
  command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir 2>/dev/null)/initdb" ] && return 0
  return 1
}

ensure_build_deps() {
  # C toolchain and the libraries that -sys crates link (openssl for native-tls).
  command -v cc >/dev/null 2>&1 || apt_install build-essential
  command -v pkg-config >/dev/null 2>&1 || apt_install pkg-config
  pkg-config --exists openssl 2>/dev/null || apt_install libssl-dev
  if ! have_pg_server || ! command -v psql >/dev/null 2>&1; then
    apt_install postgresql
  fi
}

ensure_python() {
  command -v python3 >/dev/null 2>&1 || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
}

pip_install() {
  # pip_install module=package ... : installs the Python packages whose module does not import.
  local missing=()
  for spec in "$@"; do
    python3 -c "import ${spec%%=*}" >/dev/null 2>&1 || missing+=("${spec#*=}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "pip installing ${missing[*]}"
  python3 -m pip install -q --disable-pip-version-check "${missing[@]}" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "${missing[@]}"
}

ensure_node() {
  # Node.js and npm for the ASL interpreter (aws-local-stepfunctions) and asl-validator.
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
  apt_install nodejs npm
}
