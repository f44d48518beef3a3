#!/usr/bin/env bash
# Builds the web console (ui/ → ui/dist, served by the controller at /):
# the npm packages exactly as package-lock.json pins them, then the
# type check and the Vite build. Nothing it builds loads from the internet.
set -euo pipefail
cd "$(dirname "$0")/../ui"

major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || true)
if [[ -z $major || $major -lt 20 ]]; then
  echo "console: Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
# npm ci only when the lock changed since the last install (it empties node_modules).
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "console: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build >/dev/null
echo "console: built ui/dist" >&2
