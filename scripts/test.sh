#!/usr/bin/env bash
# Runs every test: unit, BPF_PROG_TEST_RUN, real CNI plugins, and end-to-end
# labs. Needs root (namespaces, BPF). Fails loudly when the machine lacks something.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "test: the tests need root (network namespaces, BPF)" >&2; exit 1; }
[[ -d /sys/kernel/btf ]] || { echo "test: kernel BTF missing (/sys/kernel/btf)" >&2; exit 1; }

# Lints run when the toolchain has them (rustup components cannot be fetched
# on a machine that only reaches package registries); their absence is loud.
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all --check; else echo "test: WARNING rustfmt missing, format not checked" >&2; fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --quiet -- -D warnings
else
  echo "test: WARNING clippy missing, lints not checked" >&2
fi
# The console: its typed API client must be the one generated from the
# served OpenAPI document (ui/openapi.json, checked by the controller's
# tests), then the type check and the unit tests of its data shaping.
(
  cd ui
  gen=$(mktemp --suffix=.d.ts)
  trap 'rm -f "$gen"' EXIT
  npx --no-install openapi-typescript openapi.json -o "$gen" >/dev/null 2>&1
  diff -q "$gen" src/api/schema.d.ts >/dev/null \
    || { echo "test: ui/src/api/schema.d.ts is stale: run (cd ui && npm run gen)" >&2; exit 1; }
  npx --no-install tsc --noEmit
  npx --no-install vitest run --reporter=dot
)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit $status
