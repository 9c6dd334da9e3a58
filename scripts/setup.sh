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

# etcd, dockerd and containerd are run by the tests (and labs) inside namespaces
# of their own, never as the machine's services: while the packages install, a
# policy-rc.d keeps their scripts from starting them (unless one is there already).
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/setup.sh: no service starts while nsnet installs packages\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
fi
# docker.io (with containerd, runc) and busybox-static (the rootfs of the test
# image, `docker import`ed) are for tests/test_docker.py; podman (its CNI
# backend runs nsnet-cni) for tests/test_cni_podman.py. A Docker or podman the
# machine already had is its owner's: its services are left as they are.
services=etcd
for pair in openssh-server:ssh docker.io:docker containerd:containerd podman:podman; do
    if ! dpkg-query -W -f='${Status}' "${pair%%:*}" 2>/dev/null | grep -q "install ok installed"; then
        services="$services ${pair##*:}"
    fi
done
# openssh-server and openssh-client: tests/test_machines.py runs an sshd per simulated
# machine (in a private world, started by the test; the package's own service is not run).
# chromium and chromium-driver: tests/test_web.py drives the system's headless
# browser through Selenium (no browser is downloaded); `nsnet web` itself needs none.
apt-get install -y -qq --no-install-recommends \
    iproute2 iptables iputils-ping tcpdump util-linux procps kmod graphviz conntrack nftables \
    containernetworking-plugins etcd-server docker.io containerd runc busybox-static podman \
    openssh-server openssh-client \
    chromium chromium-driver fonts-dejavu-core \
    python3 python3-venv python3-pip >/dev/null
if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT
fi

# Stop and disable the services the packages may have started or enabled.
units_of() {
    case "$1" in
        docker) echo docker.service docker.socket ;;
        podman) echo podman.service podman.socket podman-restart.service podman-auto-update.timer ;;
        *) echo "$1.service" ;;
    esac
}
for service in $services; do
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        units=$(units_of "$service")
        # shellcheck disable=SC2086
        systemctl disable --now $units >/dev/null 2>&1 || true
    else
        if [ -x "/etc/init.d/$service" ]; then
            "/etc/init.d/$service" stop >/dev/null 2>&1 || true
            update-rc.d "$service" disable >/dev/null 2>&1 || true
        fi
        # Not booted with systemd now, but perhaps next time: no unit is left enabled.
        if command -v systemctl >/dev/null; then
            units=$(units_of "$service")
            # shellcheck disable=SC2086
            systemctl disable $units >/dev/null 2>&1 || true
        fi
    fi
done

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
