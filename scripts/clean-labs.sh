#!/usr/bin/env bash
# Removes every lab left on this host (for example by an interrupted test run).
set -uo pipefail
bin=${BULKHEAD_BIN:-target/release/bulkhead}
[[ -x $bin ]] || bin=target/debug/bulkhead
for dir in /run/bulkhead/labs/*/; do
  [[ -d $dir ]] && "$bin" lab down --name "$(basename "$dir")"
done
for ns in $(ip netns list | awk '{print $1}' | grep '^bh_' | sed -E 's/^bh_([a-z0-9-]+)_.*/\1/' | sort -u); do
  "$bin" lab down --name "$ns"
done
