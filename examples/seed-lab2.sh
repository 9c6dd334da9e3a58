#!/usr/bin/env bash
# The seed's lab 2, end to end: RED and BLUE joined through br0 on a host
# whose FORWARD policy is DROP. The ping fails while ARP still resolves;
# the seed's fix (one FORWARD rule) makes it work. Run as root.
#   LAB=name bash examples/seed-lab2.sh   uses another lab name (nodes NAME-RED, ...)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LAB=${LAB:-lab2}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

trap 'nsnet down "$LAB" -q 2>/dev/null || true' EXIT

say "nsnet up lab2-bridge.yaml"
nsnet up "$here/lab2-bridge.yaml" --name "$LAB"

say "ping BLUE from RED: it fails"
if nsnet exec "$LAB" RED -- ping -c 3 -i 0.3 -W 1 11.11.11.3; then
    echo "unexpected: the ping went through" >&2
    exit 1
fi

say "yet ARP worked: RED knows BLUE's MAC"
nsnet exec "$LAB" RED -- ip neigh show 11.11.11.3
nsnet exec "$LAB" BLUE -- ip -br link show beth0

say "why: the host's FORWARD policy is DROP, and bridged traffic goes through it"
nsnet exec "$LAB" host -- iptables -t filter -L FORWARD -v -n | head -1
nsnet exec "$LAB" host -- sysctl net.bridge.bridge-nf-call-iptables

say "the fix: nsnet up lab2-bridge-fixed.yaml (adds only the rule)"
nsnet up "$here/lab2-bridge-fixed.yaml" --name "$LAB"

say "ping BLUE from RED again: it works"
nsnet exec "$LAB" RED -- ping -c 3 -i 0.3 -W 1 11.11.11.3

say "nsnet down $LAB"
trap - EXIT
nsnet down "$LAB"
