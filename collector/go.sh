#!/usr/bin/env bash
# Prints the path of a Go toolchain that can build the collector (Go >= GO_MIN), getting one if needed:
#   1. $GO, `go` on PATH, or /usr/local/go/bin/go, if new enough;
#   2. else the Go release GO_VERSION from the Go module proxy (the module golang.org/toolchain, the
#      same download `GOTOOLCHAIN=go1.x` makes, checked against the Go checksum database), fetched by
#      whatever Go is there, even an old one such as Debian bookworm's golang-go 1.19; with no Go at
#      all, Debian's golang-go is installed first (apt-get, as root or with sudo).
# Fails with what to install when none of that works. Messages go to stderr, the path to stdout.
set -euo pipefail
GO_MIN=${GO_MIN:-1.26.0}        # the builder and collector v0.161.0 declare `go 1.26.0`
GO_VERSION=${GO_VERSION:-1.26.8}
CACHE=${AISPEND_GO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aispend-go}

say() { echo "collector/go.sh: $*" >&2; }
version_of() { "$1" version 2>/dev/null | sed -n 's/^go version go\([0-9][0-9.]*\).*/\1/p'; }
new_enough() {
  local v
  v=$(version_of "$1") && [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$GO_MIN" "$v" | sort -V | head -1)" = "$GO_MIN" ]
}

candidates=("${GO:-}" "$(command -v go || true)" /usr/local/go/bin/go "$CACHE/go$GO_VERSION/bin/go")
for go in "${candidates[@]}"; do
  if [ -n "$go" ] && [ -x "$go" ] && new_enough "$go"; then echo "$go"; exit 0; fi
done

# Any Go can fetch a module, the toolchain module included: find one, or install Debian's.
bootstrap=""
for go in "${candidates[@]}" /usr/lib/go/bin/go; do
  if [ -n "$go" ] && [ -x "$go" ] && [ -n "$(version_of "$go")" ]; then bootstrap=$go; break; fi
done
if [ -z "$bootstrap" ] && command -v apt-get >/dev/null; then
  SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
  say "no Go found: installing Debian's golang-go, only to fetch Go $GO_VERSION from the Go module proxy"
  if $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go >&2; then
    bootstrap=$(command -v go || echo /usr/lib/go/bin/go)
  fi
fi
fail() {
  say "$*"
  say "the collector needs Go >= $GO_MIN: install it (https://go.dev/doc/install, or any Go plus access to the"
  say "Go module proxy: \`apt-get install golang-go\` is enough, this script then fetches Go $GO_VERSION), or set GO=/path/to/go"
  exit 1
}
[ -n "$bootstrap" ] && [ -x "$bootstrap" ] || fail "no Go toolchain found and none could be installed"

case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
module="golang.org/toolchain@v0.0.1-go$GO_VERSION.$(uname -s | tr A-Z a-z)-$arch"
say "fetching Go $GO_VERSION ($module) with $bootstrap ($(version_of "$bootstrap"))"
mkdir -p "$CACHE"
dir=$(cd "$CACHE" && GOMODCACHE="$CACHE/mod" GOFLAGS=-modcacherw GOTOOLCHAIN=local GO111MODULE=on \
  "$bootstrap" mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') \
  || fail "could not download $module from the Go module proxy"
[ -n "$dir" ] && [ -f "$dir/bin/go" ] || fail "the download of $module has no bin/go"
# Module zips carry no file modes: make the toolchain's programs executable again, as the go command does.
chmod +x "$dir/bin/"* "$dir/pkg/tool/"*/*
rm -rf "$CACHE/go$GO_VERSION"
ln -s "$dir" "$CACHE/go$GO_VERSION"
new_enough "$CACHE/go$GO_VERSION/bin/go" || fail "$CACHE/go$GO_VERSION/bin/go does not run"
echo "$CACHE/go$GO_VERSION/bin/go"
