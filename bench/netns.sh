#!/usr/bin/env bash
# Pod-to-pod cost on real veth pods (bridge CNI), three setups side by side in
# one run, for N = 10, 1 000 and 10 000 rules on the server pod:
#   none      no program attached (the limit)
#   bulkhead  Bulkhead enforcing N policy entries on the server's ingress
#   iptables  the same N rules as iptables rules in the server's namespace
#   floor     a one-lookup TC program on the same hooks (what any TC-based
#             dataplane pays before doing anything), for reference
# Request/response: sockperf ping-pong (TCP). Bulk: iperf3 (TCP).
# Prints one JSON document on stdout; progress on stderr.
# Medians over ROUNDS (default 3) rounds, the order rotated each round.
# Usage: [ROUNDS=3] bench/netns.sh [SECONDS_PER_MEASUREMENT] [N...]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BULKHEAD_BIN:-target/release/bulkhead}
SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
shift || true
[[ $# -gt 0 ]] && SIZES=("$@") || SIZES=(10 1000 10000)
LAB=bench$$
FLOOR=$(ls -t target/*/build/bulkhead-dataplane-*/out/bench_floor.bpf.o 2>/dev/null | head -1)
[[ -n $FLOOR ]] || { echo "bench/netns: build first (cargo build --release)" >&2; exit 1; }
PY=/usr/bin/python3
work=$(mktemp -d)
cleanup() { "$B" lab down --name $LAB >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

log() { echo "bench/netns: $*" >&2; }

manifest() { # N
  local n=$1
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: srv, namespace: bench, labels: {app: srv}}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cli, namespace: bench, labels: {app: cli}}
spec: {containers: [{name: c}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: srv-ingress, namespace: bench}
spec:
  podSelector: {matchLabels: {app: srv}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: cli}}}]
    ports:
YAML
  # Every other port, so the compiler cannot merge them into ranges: N real entries.
  for ((i = 0; i < n - 2; i++)); do echo "    - {protocol: TCP, port: $((20000 + 2 * i))}"; done
  echo "    - {protocol: TCP, port: 11111}"
  echo "    - {protocol: TCP, port: 5201}"
}

iptables_rules() { # N
  local n=$1
  echo "*filter"
  echo ":INPUT DROP [0:0]"
  for ((i = 0; i < n - 2; i++)); do echo "-A INPUT -p tcp -s 10.244.0.0/16 --dport $((20000 + 2 * i)) -j ACCEPT"; done
  echo "-A INPUT -p tcp -s 10.244.0.0/16 --dport 11111 -j ACCEPT"
  echo "-A INPUT -p tcp -s 10.244.0.0/16 --dport 5201 -j ACCEPT"
  echo "-A INPUT -i lo -j ACCEPT"
  echo "COMMIT"
}

measure() { # setup n -> json line
  local setup=$1 n=$2 rr bulk
  rr=$("$B" lab exec --name $LAB bench/cli -- sockperf pp --tcp -i "$SRV" -p 11111 -t "$SECS" 2>&1 \
      | sed 's/\x1b\[[0-9;]*m//g' | $PY -c '
import re,sys
t=sys.stdin.read()
lat=float(re.search(r"Latency is ([0-9.]+) usec",t).group(1))
obs=int(re.search(r"Total (\d+) observations",t).group(1))
print(lat, obs)')
  bulk=$("$B" lab exec --name $LAB bench/cli -- iperf3 -c "$SRV" -t "$SECS" -J | $PY -c '
import json,sys
print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')
  read -r lat obs <<<"$rr"
  $PY -c "import json; print(json.dumps({'setup':'$setup','n':$n,'latency_us':$lat,'rr_per_sec':$obs/$SECS,'bulk_gbps':$bulk/1e9}))"
}

results=()
for n in "${SIZES[@]}"; do
  log "N=$n: lab up"
  manifest "$n" >"$work/m.yaml"
  "$B" lab down --name $LAB >/dev/null
  "$B" lab up --name $LAB --nodes 1 --mode enforce -f "$work/m.yaml" >/dev/null 2>"$work/up.log" || { cat "$work/up.log" >&2; exit 1; }
  SRV=$("$B" lab probe --name $LAB bench/cli bench/srv:80 >/dev/null; jq -r '.pods[] | select(.name=="srv") | .ips[0]' /run/bulkhead/labs/$LAB/state.json)
  SRVNS=$(jq -r '.pods[] | select(.name=="srv") | .netns' /run/bulkhead/labs/$LAB/state.json)
  NODENS=$(jq -r '.nodes[0].netns' /run/bulkhead/labs/$LAB/state.json)
  HOSTDEVS=$("$B" lab status --name $LAB | awk '/attached/ {print $3}')
  ip netns exec "$SRVNS" sockperf sr --tcp -i 0.0.0.0 -p 11111 >/dev/null 2>&1 &
  ip netns exec "$SRVNS" iperf3 -s -D >/dev/null 2>&1
  sleep 1

  for ((round = 0; round < ROUNDS; round++)); do
    # rotate the order each round so warm-up and drift do not favour one setup
    case $((round % 3)) in
      0) order=(bulkhead iptables none floor) ;;
      1) order=(none floor bulkhead iptables) ;;
      2) order=(iptables none floor bulkhead) ;;
    esac
    for setup in "${order[@]}"; do
      log "N=$n round $((round + 1))/$ROUNDS: $setup"
      ip netns exec "$SRVNS" iptables -P INPUT ACCEPT
      ip netns exec "$SRVNS" iptables -F
      for dev in $HOSTDEVS; do ip -n "$NODENS" link show "$dev" >/dev/null 2>&1 && tc -n "$NODENS" qdisc del dev "$dev" clsact 2>/dev/null || true; done
      case $setup in
        floor)
          rm -f /sys/fs/bpf/bulkhead/${LAB}_n1/links/*
          for dev in $HOSTDEVS; do
            tc -n "$NODENS" qdisc add dev "$dev" clsact
            tc -n "$NODENS" filter add dev "$dev" ingress bpf da obj "$FLOOR" sec classifier
            tc -n "$NODENS" filter add dev "$dev" egress bpf da obj "$FLOOR" sec classifier
          done ;;
        bulkhead)
          # re-attach: a new generation makes the agent attach again
          "$B" lab up --name $LAB --nodes 1 --mode enforce -f "$work/m.yaml" >/dev/null 2>"$work/up.log" || { cat "$work/up.log" >&2; exit 1; } ;;
        iptables)
          rm -f /sys/fs/bpf/bulkhead/${LAB}_n1/links/*
          iptables_rules "$n" | ip netns exec "$SRVNS" iptables-restore ;;
        none)
          rm -f /sys/fs/bpf/bulkhead/${LAB}_n1/links/* ;;
      esac
      results+=("$(measure "$setup" "$n")")
    done
  done
  "$B" lab down --name $LAB >/dev/null
done

printf '%s\n' "${results[@]}" | $PY -c '
import json,sys
rows=[json.loads(l) for l in sys.stdin if l.strip()]
out={"benchmark":"netns_pod_to_pod","rows":rows,"ratios":[]}
for n in sorted({r["n"] for r in rows}):
    def med(setup,key):
        v=sorted(r[key] for r in rows if r["n"]==n and r["setup"]==setup)
        return v[len(v)//2]
    by={s:{"rr_per_sec":med(s,"rr_per_sec"),"bulk_gbps":med(s,"bulk_gbps"),"latency_us":med(s,"latency_us")} for s in ("none","bulkhead","iptables","floor")}
    none=by["none"]
    out["ratios"].append({
        "n": n,
        "median": by,
        "bulkhead_rr_vs_none": by["bulkhead"]["rr_per_sec"]/none["rr_per_sec"],
        "bulkhead_bulk_vs_none": by["bulkhead"]["bulk_gbps"]/none["bulk_gbps"],
        "iptables_rr_vs_none": by["iptables"]["rr_per_sec"]/none["rr_per_sec"],
        "iptables_bulk_vs_none": by["iptables"]["bulk_gbps"]/none["bulk_gbps"],
        "floor_rr_vs_none": by["floor"]["rr_per_sec"]/none["rr_per_sec"],
        "floor_bulk_vs_none": by["floor"]["bulk_gbps"]/none["bulk_gbps"],
    })
out["target"]="bulkhead within 5% of none (ratio >= 0.95) at every N"
print(json.dumps(out, indent=2))'
