#!/usr/bin/env bash
# Installs what roomcast's make targets need on Debian bookworm, and skips
# whatever is already there: Debian packages (GStreamer, ffmpeg for ffprobe,
# nginx with the RTMP module, Chromium for the browser tests),
# livekit-server built from the Go module proxy at a pinned version (no
# prebuilt binaries are downloaded), and the browser tests' npm packages,
# pinned in e2e/browser/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

LIVEKIT_VERSION=v1.13.5 # later tags carry replace directives the proxy cannot serve
BIN="$PWD/.bin"

packages=(
  pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  ffmpeg nginx libnginx-mod-rtmp
  chromium # /usr/bin/chromium; playwright-core drives it, never a browser of its own
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$BIN/livekit-server.version"
if [ ! -x "$BIN/livekit-server" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$LIVEKIT_VERSION" ]; then
  echo "deps: building livekit-server $LIVEKIT_VERSION from the Go module proxy (about 3 minutes)"
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION"
  mkdir -p "$BIN"
  mv "$tmp/server" "$BIN/livekit-server"
  rmdir "$tmp"
  echo "$LIVEKIT_VERSION" >"$stamp"
fi

# The browser tests' publisher (e2e/browser): playwright-core needs
# Node.js 20 or later, which Debian bookworm's nodejs (18) is not.
if ! command -v node >/dev/null || ! command -v npm >/dev/null ||
  ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "deps: the browser tests need Node.js >= 20 with npm; found: $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
# npm ci installs exactly the lockfile, and only when node_modules is
# missing or was installed from another lockfile (a copy is the stamp).
browser=e2e/browser
if ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.roomcast-package-lock.json"; then
  echo "deps: installing the browser tests' npm packages (npm ci in $browser)"
  (cd "$browser" && npm ci --no-audit --no-fund)
  cp "$browser/package-lock.json" "$browser/node_modules/.roomcast-package-lock.json"
fi
