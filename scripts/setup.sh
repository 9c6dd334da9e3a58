#!/usr/bin/env bash
# Set up nsnet on Debian 12, as root: system packages, then a virtual
# environment in .venv with nsnet and its test tools.
#   --demo   then run the seed's lab 2 end to end (examples/seed-lab2.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/setup.sh installs packages and builds namespaces: run it as root" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    iproute2 iptables iputils-ping tcpdump util-linux procps kmod graphviz conntrack nftables \
    containernetworking-plugins etcd-server \
    python3 python3-venv python3-pip >/dev/null

# etcd is run by the overlay tests (and labs) inside their own namespaces, never
# as the machine's service: stop and disable the one the package may start.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/etcd ]; then
    /etc/init.d/etcd stop >/dev/null 2>&1 || true
    update-rc.d etcd disable >/dev/null 2>&1 || true
fi

# Bridged traffic reaches iptables only with br_netfilter loaded (the seed's
# lab 2 depends on it, as every Docker host does).
if [ ! -d /proc/sys/net/bridge ]; then
    modprobe br_netfilter || echo "warning: could not load br_netfilter; lab 2 needs it" >&2
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "nsnet $(.venv/bin/nsnet --version | awk '{print $NF}') is ready: .venv/bin/nsnet --help"

if [ "${1:-}" = "--demo" ]; then
    PATH="$PWD/.venv/bin:$PATH" bash examples/seed-lab2.sh
fi
