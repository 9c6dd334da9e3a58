"""Checks made before the kernel is touched: root, tools, kernel features."""

from __future__ import annotations

import os
import shutil

from nsnet.errors import PreflightError
from nsnet.kernel import linkkinds, tc
from nsnet.model import State

PACKAGES = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "iptables-save": "iptables",
    "iptables-restore": "iptables",
    "ip6tables-save": "iptables",
    "ip6tables-restore": "iptables",
    "tc": "iproute2",
}


def require_root(what: str = "change network namespaces") -> None:
    if os.geteuid() != 0:
        raise PreflightError(f"nsnet must run as root to {what}: run it with sudo (or as root)")


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = sorted({PACKAGES.get(t, t) for t in missing})
        raise PreflightError(
            f"required tool{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}; "
            f"install with: apt-get install {' '.join(pkgs)}"
        )


def tools_for(state: State, firewall_in_use: bool = False) -> list[str]:
    """The external tools that bringing ``state`` up (or down) needs."""
    tools = []
    families = set()
    for space in state.namespaces.values():
        families |= space.firewall.families
        if space.docker and space.docker_backend == "nftables":
            tools.append("nft")
        elif space.docker:
            families |= {4, 6}
    if firewall_in_use:
        families.add(4)
    if families:
        tools.append("nsenter")
    if 4 in families:
        tools += ["iptables-save", "iptables-restore"]
    if 6 in families:
        tools += ["ip6tables-save", "ip6tables-restore"]
    return tools


def require_features(state: State) -> None:
    """Kernel features the state needs that this kernel may lack."""
    bridge_keys = any(k.startswith("net.bridge.") for s in state.namespaces.values() for k in s.sysctls)
    if bridge_keys and not os.path.isdir("/proc/sys/net/bridge"):
        raise PreflightError(
            "net.bridge.* sysctls need the br_netfilter kernel module, which is not loaded: "
            "run `modprobe br_netfilter` (as root) and try again"
        )


def check(state: State, firewall_in_use: bool = False) -> None:
    """Everything above, in order; raises :class:`PreflightError` on the first problem."""
    require_root()
    shapings = [link.shaping for s in state.namespaces.values() for link in s.links.values() if link.shaping]
    require_tools(*tools_for(state, firewall_in_use), *(["tc"] if shapings else []))
    require_features(state)
    tc.require(shapings)
    linkkinds.require(link.kind for s in state.namespaces.values() for link in s.links.values())
