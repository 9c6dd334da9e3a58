"""nsnet-cni against the reference ``bridge`` plugin, called the way a container runtime calls them.

Run as root: python bench/bench_cni.py [--rounds N] [--background N] [--out FILE]

The bench re-runs itself in a private world (``unshare --net --mount --pid``,
``/run`` on a tmpfs): its network namespace is the node, set up as a Docker
host (FORWARD policy DROP, bridged traffic through iptables), and it never
touches the machine's own network. There, for each plugin in turn on the
same configuration (only ``type`` and the network's name, bridge and subnet
differ), every call is what libcni does: the plugin executed with the
``CNI_*`` environment and the configuration on stdin, from the node, into a
container namespace made beforehand. Timed: VERSION, ADD, CHECK and DEL of
one container while ``--background`` others stay attached to each network;
then the same with a published port, where the reference needs ``portmap``
after ``bridge`` (two executions) and nsnet-cni one.

Prints the median (and min-max) of every call, wall-clock and CPU time (the
plugin's and its children's: what the machine's load disturbs least), and
the ratios nsnet-cni / reference; ``--out`` writes the tables as Markdown too.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REFERENCE = Path("/usr/lib/cni")
PLUGIN = Path("/run/bench-bin/nsnet-cni")
"""The launcher docs/cni.md installs in the runtime's plugin directory, written there in the world."""
LAUNCHER = "#!{python} -I\n{path}from nsnet.cni.main import run\n\nrun()\n"
SETUP = r"""
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=755 bench-run /run
mount -t sysfs sysfs /sys
ip link set lo up
sysctl -q -w net.bridge.bridge-nf-call-iptables=1
iptables -P FORWARD DROP
exec "$@"
"""
COMMANDS = ("VERSION", "ADD", "CHECK", "DEL")


class Cost:
    """Wall-clock and CPU seconds (user + system, the plugin's and its children's) of some calls."""

    def __init__(self, wall: float = 0.0, cpu: float = 0.0) -> None:
        self.wall, self.cpu = wall, cpu

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.wall + other.wall, self.cpu + other.cpu)

    def __truediv__(self, n: int) -> Cost:
        return Cost(self.wall / n, self.cpu / n)


def conflist(kind: str, index: int, ports: bool) -> dict[str, Any]:
    """The configuration of docs/cni.md's first example, for plugin ``kind`` (``bridge`` or ``nsnet-cni``)."""
    main: dict[str, Any] = {
        "type": kind,
        "bridge": f"cni{index}",
        "isGateway": True,
        "isDefaultGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "dataDir": "/run/bench-ipam",
            "ranges": [[{"subnet": f"10.{88 + index}.0.0/16"}]],
        },
    }
    plugins = [main]
    if ports:
        if kind == "bridge":
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
        else:
            main["capabilities"] = {"portMappings": True}
    return {"cniVersion": "1.0.0", "name": f"bench-{kind}", "plugins": plugins}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the plugins' and what they ran (IPAM, iptables)
    return usage.ru_utime + usage.ru_stime


def call(plugin: Path, command: str, conf: dict[str, Any] | None, cid: str, netns: str) -> tuple[Cost, Any]:
    """Execute a plugin as libcni does; (its cost, its JSON answer or None)."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "",
        "CNI_PATH": f"{REFERENCE}:{PLUGIN.parent}",
    }
    stdin = json.dumps(conf).encode() if conf is not None else b""
    cpu, start = _cpu(), time.perf_counter()
    proc = subprocess.run([str(plugin)], input=stdin, env=env, capture_output=True, check=False)
    took = Cost(time.perf_counter() - start, _cpu() - cpu)
    if proc.returncode != 0:
        raise RuntimeError(f"{plugin.name} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return took, json.loads(proc.stdout) if proc.stdout.strip() else None


def chain(
    net: dict[str, Any], command: str, cid: str, netns: str, prev: Any = None, ports: list[Any] | None = None
) -> tuple[Cost, Any]:
    """One runtime operation on a conflist: every plugin in turn (DEL in reverse), prevResult passed on."""
    plugins = net["plugins"] if command != "DEL" else list(reversed(net["plugins"]))
    total, result = Cost(), prev
    for plugin in plugins:
        conf = copy.deepcopy(plugin)
        conf.update(cniVersion=net["cniVersion"], name=net["name"])
        if ports and conf.get("capabilities", {}).get("portMappings"):
            conf["runtimeConfig"] = {"portMappings": ports}
        if result is not None:
            conf["prevResult"] = result
        path = PLUGIN if conf["type"] == "nsnet-cni" else REFERENCE / conf["type"]
        took, answer = call(path, command, conf if command != "VERSION" else {"cniVersion": "1.0.0"}, cid, netns)
        total += took
        if command == "ADD":
            result = answer
    return total, result


def netns(name: str) -> str:
    subprocess.run(["ip", "netns", "add", name], check=True)
    return f"/run/netns/{name}"


def measure(rounds: int, background: int, ports: bool) -> dict[str, dict[str, list[Cost]]]:
    kinds = ("nsnet-cni", "bridge")
    nets = {kind: conflist(kind, i, ports) for i, kind in enumerate(kinds)}
    published = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}] if ports else None
    times: dict[str, dict[str, list[Cost]]] = {k: {c: [] for c in COMMANDS} for k in kinds}
    tag = "p" if ports else "b"
    for kind in kinds:  # containers that stay attached, as on a busy node
        for i in range(background):
            cid = f"bg-{tag}{i}-{kind}"
            chain(nets[kind], "ADD", cid, netns(cid), ports=published)
    for r in range(rounds):
        for kind in kinds if r % 2 == 0 else tuple(reversed(kinds)):  # same background load for both
            net = nets[kind]
            cid = f"c-{tag}{r}-{kind}"
            path = netns(cid)
            took, _ = chain(net, "VERSION", cid, path)
            times[kind]["VERSION"].append(took / len(net["plugins"]))
            took, result = chain(net, "ADD", cid, path, ports=published)
            times[kind]["ADD"].append(took)
            if not ports:  # the reference portmap's CHECK fails on IPv6 rules it never made (plugins#819)
                took, _ = chain(net, "CHECK", cid, path, prev=result, ports=published)
                times[kind]["CHECK"].append(took)
            took, _ = chain(net, "DEL", cid, path, prev=result, ports=published)
            times[kind]["DEL"].append(took)
            subprocess.run(["ip", "netns", "del", cid], check=True)
    return times


def table(title: str, times: dict[str, dict[str, list[Cost]]], plugins: str) -> list[str]:
    lines = [
        f"### {title}",
        "",
        f"| call | nsnet-cni (ms) | {plugins} (ms) | ratio | CPU: nsnet-cni (ms) | {plugins} (ms) | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for command in COMMANDS:
        ours, theirs = times["nsnet-cni"][command], times["bridge"][command]
        if not ours or not theirs:
            continue
        row = f"| {command} "
        for what in ("wall", "cpu"):
            o, t = [getattr(c, what) for c in ours], [getattr(c, what) for c in theirs]
            mo, mt = statistics.median(o), statistics.median(t)
            row += f"| {1000 * mo:.1f} ({1000 * min(o):.0f}-{1000 * max(o):.0f}) "
            row += f"| {1000 * mt:.1f} ({1000 * min(t):.0f}-{1000 * max(t):.0f}) | {mo / mt:.2f} "
        lines.append(row + "|")
    return [*lines, ""]


def inside(args: argparse.Namespace) -> None:
    PLUGIN.parent.mkdir(parents=True)
    path = f"import sys\n\nsys.path.insert(0, {args.source!r})\n" if args.source else ""
    PLUGIN.write_text(LAUNCHER.format(python=sys.executable, path=path))
    PLUGIN.chmod(0o755)
    lines = [
        f"{args.rounds} rounds, {args.background} other containers attached to each network, "
        f"{os.cpu_count()} CPUs; median (min-max) of each call.",
        "",
    ]
    plain = measure(args.rounds, args.background, ports=False)
    lines += table("Same configuration, no published port", plain, "reference bridge")
    chained = measure(args.rounds, args.background, ports=True)
    lines += table("With a published port (8080 -> 80)", chained, "bridge + portmap")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--background", type=int, default=5)
    parser.add_argument("--out", help="also write the tables (Markdown) to this file")
    parser.add_argument("--source", help="nsnet's src directory of another checkout, to measure that version")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        inside(args)
        return
    if os.geteuid() != 0:
        sys.exit("bench_cni.py builds namespaces: run it as root")
    for needed in (REFERENCE / "bridge", REFERENCE / "host-local", REFERENCE / "portmap"):
        if not needed.exists():
            sys.exit(f"{needed} is missing (apt-get install containernetworking-plugins; pip install -e .)")
    out = ["--out", str(Path(args.out).resolve())] if args.out else []
    out += ["--source", str(Path(args.source).resolve())] if args.source else []
    argv = [sys.executable, os.path.abspath(__file__), "--inside", "--rounds", str(args.rounds)]
    argv += ["--background", str(args.background), *out]
    # Everything the bench makes dies with the world: its namespaces, bridges, rules and files.
    world = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
    sys.exit(subprocess.run([*world, "bash", "-c", SETUP, "bench", *argv], check=False).returncode)


if __name__ == "__main__":
    main()
