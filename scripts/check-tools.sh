#!/usr/bin/env bash
# What `make run` and `make test` need before they start: says, within a second, which
# tool is missing and how to install it, instead of failing minutes into a build.
# Usage: scripts/check-tools.sh [run|test]   (test also needs Node.js for the infra tests)
set -u
need=${1:-test}
missing=()

have() { command -v "$1" >/dev/null 2>&1; }

if ! have cargo || ! have rustc; then
  missing+=("the Rust toolchain (cargo, rustc): install rustup from your package manager or rustup.rs, then \`rustup default stable\`")
fi
if ! have python3; then
  missing+=("Python 3: apt-get install python3 python3-venv (Debian/Ubuntu), brew install python (macOS)")
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=("Python 3 venv support: apt-get install python3-venv (Debian/Ubuntu)")
fi
if [ "$need" = test ]; then
  if ! have node || ! have npm; then
    missing+=("Node.js 20 or newer with npm: apt-get install nodejs npm, or nodejs.org")
  elif ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' >/dev/null 2>&1; then
    missing+=("Node.js 20 or newer (found $(node --version))")
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "make $need needs:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi
