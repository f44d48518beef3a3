#!/usr/bin/env bash
# The lab demo: a small shop application on two nodes, NetworkPolicies and a cluster-scoped Admin rule,
# live flows, and a quarantine. Set KEEP=1 to leave the lab up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BULKHEAD_BIN:-target/release/bulkhead}
LAB=demo
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

"$B" lab down --name $LAB >/dev/null
trap '[[ ${KEEP:-0} == 1 ]] || "$B" lab down --name $LAB >/dev/null' EXIT

step "Bringing up the lab: 2 nodes, bridge CNI, 5 pods, 2 NetworkPolicies and 1 ClusterNetworkPolicy"
"$B" lab up --name $LAB --nodes 2 --cni bridge -f examples/demo/app.yaml -f examples/demo/policies.yaml

step "Who can reach whom: every pod to every port another pod serves (TCP, in parallel)"
"$B" lab probe --name $LAB --matrix --ports 80,8080,5432 --protocols TCP -o json \
  | jq -r --slurpfile st /run/bulkhead/labs/$LAB/state.json '
      select(.from != .to) | . as $p
      | select([$st[0].pods[] | select(.namespace + "/" + .name == $p.to) | .ports[] | select(.udp | not) | .port] | index($p.port))
      | "\(.from) -> \(.to):\(.port)  \(if .connected then "connected" else "BLOCKED" end)"' \
  | sort | column -t

step "Why? The controller explains each verdict"
"$B" policy explain --lab $LAB shop/frontend-0 shop/backend:8080
"$B" policy explain --lab $LAB shop/frontend-0 shop/db:5432
"$B" policy explain --lab $LAB other/intruder shop/db:5432

step "A bad policy is refused, and nothing already enforced changes"
printf 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: typo, namespace: shop}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]\n' \
  | "$B" apply --lab $LAB -f - 2>&1 | head -1 || true
"$B" status --lab $LAB

step "Live flows while the shop works and an intruder probes (10 s)"
"$B" flows --lab $LAB --follow &
flows=$!
for _ in $(seq 1 5); do
  "$B" lab probe --name $LAB shop/frontend-0 shop/backend:8080 >/dev/null
  "$B" lab probe --name $LAB shop/frontend-1 shop/backend:9000/udp >/dev/null
  "$B" lab probe --name $LAB shop/backend shop/db:5432 >/dev/null
  "$B" lab probe --name $LAB other/intruder shop/db:5432 >/dev/null
  "$B" lab probe --name $LAB shop/frontend-0 shop/db:5432 >/dev/null
  sleep 2
done
kill $flows 2>/dev/null || true
wait $flows 2>/dev/null || true

step "shop/backend is compromised: quarantine it"
"$B" quarantine --lab $LAB shop/backend --reason "demo: beaconing to unknown hosts"
"$B" lab probe --name $LAB shop/frontend-0 shop/backend:8080
"$B" lab probe --name $LAB shop/backend shop/db:5432
"$B" lab status --name $LAB

step "Release it"
"$B" release --lab $LAB shop/backend --reason "demo: reimaged"
"$B" lab probe --name $LAB shop/frontend-0 shop/backend:8080

step "Done. Try: $B flows --lab $LAB -o json | jq . ; $B lab down --name $LAB"
