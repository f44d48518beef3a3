#!/usr/bin/env bash
# Installs every system tool Bulkhead's build, lab, tests and benchmarks need.
# Idempotent: packages already present are skipped, so a warm machine pays ~1 s.
set -euo pipefail

packages=(
  clang-19 llvm-19 libclang-19-dev libbpf-dev bpftool linux-libc-dev
  iproute2 containernetworking-plugins nftables iptables
  protobuf-compiler pkg-config
  iperf3 sockperf python3-scapy python3-venv procps psmisc curl jq umoci
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# bpffs is where Bulkhead pins programs and maps; mount it if the host has not.
if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
fi

# Python tools the tests run, in the repository's own virtualenv:
# schemathesis fuzzes the API against the OpenAPI document it serves;
# kubernetes-validate checks `bulkhead install` against the Kubernetes
# schemas it bundles (no download); checkov scans it for security posture.
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$here/.venv"
python_tools=("schemathesis==4.32.5" "kubernetes-validate==1.37.0" "checkov==3.3.30")
if ! "$venv/bin/st" --version >/dev/null 2>&1 \
  || ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1 \
  || ! "$venv/bin/checkov" --version >/dev/null 2>&1; then
  echo "install-deps: installing ${python_tools[*]} into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "${python_tools[@]}"
fi
# Interpreters without the fix for CPython gh-106905 get a guard around
# ast.parse (see scripts/python/bulkhead_ast_fix.py).
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! "$venv/bin/python" -c 'import sys; v = sys.version_info[:3]; sys.exit(not (v >= (3, 13) or (3, 12, 2) <= v < (3, 13) or (3, 11, 8) <= v < (3, 12)))'; then
  cp "$here/scripts/python/bulkhead_ast_fix.py" "$site/"
  echo "import bulkhead_ast_fix" > "$site/bulkhead_ast_fix.pth"
fi

# The console is built with Node.js 20 or newer (the machine's; Debian's is older).
command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "install-deps: Node.js 20+ and npm are needed for the console (node, npm)" >&2; exit 1; }

for tool in clang-19 bpftool ip nft iperf3 protoc chromium umoci; do
  command -v "$tool" >/dev/null || { echo "install-deps: $tool still missing" >&2; exit 1; }
done
"$venv/bin/st" --version >/dev/null || { echo "install-deps: schemathesis missing in $venv" >&2; exit 1; }
"$venv/bin/kubernetes-validate" --version >/dev/null || { echo "install-deps: kubernetes-validate missing in $venv" >&2; exit 1; }
"$venv/bin/checkov" --version >/dev/null || { echo "install-deps: checkov missing in $venv" >&2; exit 1; }
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/ptp && -x /usr/lib/cni/host-local ]] \
  || { echo "install-deps: CNI plugins missing under /usr/lib/cni" >&2; exit 1; }
