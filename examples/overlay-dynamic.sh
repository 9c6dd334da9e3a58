#!/usr/bin/env bash
# Three hosts on one VXLAN network whose entries a controller writes on
# demand: etcd on the underlay, `nsnet overlay serve` answering the kernel's
# misses, RED (host A) reaching BLUE (host B), then GREEN joining host C and
# reachable at once. Run as root.
#   LAB=name bash examples/overlay-dynamic.sh   uses another lab name (nodes NAME-RED, ...)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LAB=${LAB:-overlay-dyn}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    nsnet down "$LAB" -q 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

say "nsnet up overlay-dynamic.yaml: hosts A, B, C; no forwarding entry anywhere"
cp "$here/overlay-dynamic.yaml" "$work/lab.yaml"
nsnet up "$work/lab.yaml" --name "$LAB" -q
nsnet exec "$LAB" A -- bridge fdb show dev vxlan1 self | grep dst || echo "(A:vxlan1 sends nowhere yet)"

say "the registry (etcd on the underlay), and a controller per host"
nsnet overlay registry "$LAB" > "$work/etcd.log" 2>&1 & pids+=($!)
nsnet overlay serve "$LAB" > "$work/serve.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
    [ "$(grep -c ' publish ' "$work/serve.log" || true)" -ge 2 ] && break
    sleep 0.1
done
nsnet overlay ls "$LAB"

say "ping BLUE (host B) from RED (host A): A and B answer their misses"
nsnet exec "$LAB" RED -- ping -c 2 -W 1 10.0.0.3
sleep 0.3
grep -E ' (l3miss|l2miss|answer) ' "$work/serve.log"

say "GREEN joins host C (a change of the file, nsnet up): reachable from A and B at once"
sed -e 's/^  C:$/  C:\n    interfaces: {vgreen: {master: br0}}/' \
    -e 's/^links:$/  GREEN:\n    interfaces: {geth0: {addresses: [10.0.0.4\/24]}}\nlinks:\n  - [GREEN:geth0, C:vgreen]/' \
    "$here/overlay-dynamic.yaml" > "$work/lab.yaml"
nsnet up "$work/lab.yaml" --name "$LAB" -q
nsnet exec "$LAB" RED -- ping -c 1 -W 2 10.0.0.4
nsnet exec "$LAB" BLUE -- ping -c 1 -W 2 10.0.0.4
nsnet inspect "$LAB" A --what overlay

say "nsnet down $LAB"
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
trap - EXIT
nsnet down "$LAB"
rm -rf "$work"
