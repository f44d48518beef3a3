#!/usr/bin/env bash
# The lab demo: Online Boutique (eleven services, a cache and a load
# generator) on two nodes. Bulkhead learns its traffic, suggests
# least-privilege NetworkPolicies, applies them in audit mode and then
# enforces them; the application keeps working. Then an intrusion from
# outside through the load balancer, its access trail, a block of its
# source and the frontend's quarantine.
# Ends by printing the console's URL and a token, and keeps the lab up
# until Ctrl-C; DEMO_EXIT=1 ends right away instead (for scripts), and
# KEEP=1 ends right away leaving the lab up.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BULKHEAD_BIN:-target/release/bulkhead}
LAB=demo
# The lab's outside address: on the fabric, no node and no pod (the world).
OUTSIDE=172.30.0.250
WINDOW=${WINDOW:-30}
QUIET=${QUIET:-15}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
export RUST_BACKTRACE=0

"$B" lab down --name $LAB >/dev/null
trap '[[ ${KEEP:-0} == 1 ]] || "$B" lab down --name $LAB >/dev/null' EXIT

step "Bringing up Online Boutique: 2 nodes, bridge CNI, 12 Deployments, 12 Services (frontend-external a LoadBalancer), cluster DNS; no policy yet"
"$B" lab up --name $LAB --nodes 2 --cni bridge -f examples/boutique/app.yaml \
  --learn-window "$WINDOW" --learn-quiet "$QUIET"

step "Learning the baseline (each workload learns ≥ ${WINDOW} s, stable after ${QUIET} s without a new edge)"
deadline=$((SECONDS + 240))
while :; do
  b=$("$B" baseline --lab $LAB -o json)
  total=$(jq '.workloads | length' <<<"$b")
  stable=$(jq '[.workloads[] | select(.phase == "stable")] | length' <<<"$b")
  edges=$(jq '[.workloads[].edges] | add // 0' <<<"$b")
  flows=$("$B" status --lab $LAB -o json | jq '.flows.records')
  printf '  %3ds  %2d/%d workloads stable, %3d baseline edges, %6d connections seen\n' \
    "$SECONDS" "$stable" "$total" "$edges" "$flows"
  if [[ $total -ge 13 && $stable -eq $total ]]; then break; fi
  if (( SECONDS > deadline )); then echo "baselines did not settle in time" >&2; exit 1; fi
  sleep 3
done

step "The service graph Bulkhead learned"
"$B" graph --lab $LAB

step "Exposure: every port, how far it is exposed, what it says it speaks, who can reach it and who did (no policy yet)"
"$B" exposure --lab $LAB

step "Suggested least-privilege policies (one per workload, ingress and egress, with evidence)"
"$B" suggest --lab $LAB

step "Review: approve every suggestion and stage it in audit mode"
for id in $("$B" review list --lab $LAB -o json | jq -r '.[] | select(.status == "pending") | .id'); do
  "$B" review approve --lab $LAB "$id" --reason "demo: matches the architecture diagram" >/dev/null
  "$B" review apply --lab $LAB "$id" --mode audit
done
sleep 10
"$B" review list --lab $LAB
frontend=$("$B" review list --lab $LAB -o json | jq -r '.[] | select(.workload.name == "frontend") | .id')
"$B" review show --lab $LAB "$frontend" | sed -n '/^what-if/,$p'

step "Every suggestion reported zero would-drop flows in audit: promote them to enforce"
for id in $("$B" review list --lab $LAB -o json | jq -r '.[] | select(.status == "audit") | .id'); do
  drops=$("$B" review show --lab $LAB "$id" -o json | jq '.would_drop_total')
  echo "  suggestion $id: $drops would-drop flows in audit"
  "$B" review apply --lab $LAB "$id" --mode enforce >/dev/null
done
"$B" status --lab $LAB

step "Enforced for 15 s: all legitimate traffic still flows (dropped flows since enforcing:)"
sleep 15
"$B" flows --lab $LAB --verdict dropped --since 15s
echo "  $("$B" flows --lab $LAB --since 15s --limit 1000000 -o json | jq length) flows recorded, $("$B" flows --lab $LAB --verdict dropped --since 15s -o json | jq length) dropped"

step "Exposure under the enforced policies: who can reach each port now, and where to tighten"
"$B" exposure --lab $LAB | sed -n '1,/^$/p'

step "An intrusion: from outside ($OUTSIDE) through the shop's load balancer into the frontend, which then reaches for the Redis cache and sweeps the cart service's ports"
lb=$(jq -r '.services[] | select(.name == "frontend-external") | .load_balancer_ip' "/run/bulkhead/labs/$LAB/state.json")
echo "  frontend-external is at $lb:80"
"$B" lab probe --name $LAB outside "$lb:80"
"$B" lab probe --name $LAB boutique/frontend-0 boutique/redis-cart:6379 || true
for port in 22 80 443 3306 5432 6379 8080 9090; do
  "$B" lab probe --name $LAB boutique/frontend-0 boutique/cartservice:$port >/dev/null 2>&1 || true
done
"$B" lab probe --name $LAB boutique/frontend-0 boutique/cartservice:7070
sleep 3
"$B" flows --lab $LAB --verdict dropped --since 15s
"$B" baseline --lab $LAB | sed -n '/anomalies/,$p'

api=$("$B" lab status --name $LAB -o json)
export BULKHEAD_SERVER=$(jq -r .api.url <<<"$api") BULKHEAD_CA_FILE=$(jq -r .api.ca_file <<<"$api")
viewer=$(jq -r .api.tokens.viewer <<<"$api") admin=$(jq -r .api.tokens.admin <<<"$api")

step "The frontend's access trail over the last 2 minutes, through the HTTPS API: every connection both ways, NEW where its baseline lacks it, and what the peers it reached did next"
echo "  API $BULKHEAD_SERVER (CA $BULKHEAD_CA_FILE; tokens $admin, $viewer)"
"$B" --token-file "$admin" trail boutique/frontend-0 --since 2m
echo "  (The intruder arrives as the node's address: frontend-external has externalTrafficPolicy Cluster, so the"
echo "   node rewrites the source. The block below still stops it, at the node's uplink, before that rewrite.)"

step "Block the intruder's address on every node for an hour: the load balancer no longer answers it, the shop's own traffic still flows"
"$B" --token-file "$admin" block add "$OUTSIDE" --reason "demo: intrusion through frontend-external" --expires-in 1h
"$B" --token-file "$admin" block list --active
"$B" lab probe --name $LAB outside "$lb:80" || true
"$B" lab probe --name $LAB boutique/loadgenerator-0 boutique/frontend:80

step "Quarantine the frontend: a viewer may not, a responder or admin may; cut off both ways in milliseconds, then released"
"$B" --token-file "$viewer" get whoami
"$B" --token-file "$viewer" quarantine boutique/frontend-0 --reason "demo: a viewer tries" || true
"$B" --token-file "$admin" quarantine boutique/frontend-0 --reason "demo: intrusion, lateral movement to redis-cart"
"$B" lab probe --name $LAB boutique/loadgenerator-0 boutique/frontend:80 || true
"$B" --token-file "$admin" release boutique/frontend-0 --reason "demo: reimaged"
"$B" lab probe --name $LAB boutique/loadgenerator-0 boutique/frontend:80
"$B" --token-file "$admin" audit --limit 6
unset BULKHEAD_SERVER BULKHEAD_CA_FILE

step "The console in a real browser (Debian's Chromium): the map, a suggestion, the flows"
shots=${SCREENSHOTS:-target/tmp/demo-screenshots}
BULKHEAD_URL=$(jq -r .api.url <<<"$api") ADMIN_TOKEN=$(cat "$admin") SCREENSHOTS=$shots node ui/e2e/demo-shots.mjs

if [[ ${DEMO_EXIT:-0} == 1 || ${KEEP:-0} == 1 ]]; then
  step "Done. Try: $B graph --lab $LAB -o yaml; $B review show --lab $LAB $frontend; $B flows --lab $LAB --workload frontend"
  exit 0
fi

step "The console: the map, flows, review, quarantine, policies, status and the audit log"
echo "  Open      $(jq -r .api.url <<<"$api")/"
echo "  Token     $(cat "$admin")   (admin; a viewer's: $(cat "$viewer"))"
echo "  CA        $(jq -r .api.ca_file <<<"$api") (the lab's own; or accept the browser's warning)"
echo "  The lab and the console stay up until Ctrl-C, then everything is removed."
trap '"$B" lab down --name $LAB >/dev/null; exit 0' INT TERM
while :; do sleep 3600 & wait $!; done
