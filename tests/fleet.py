"""Several machines on this one: private worlds joined by an underlay switch, each with a real OpenSSH server.

Each machine is a :class:`world.World` (its own root namespace, ``/run`` and
so nsnet state directory) with ``eth1`` on the underlay; the switch is one
more world, with a bridge ``ul0`` whose ports lead to the machines, and the
address ``.254``: the operator's seat, where the driving ``nsnet`` and etcd
run. Veths are made from inside the machine's world with their peer sent to
the switch's (``ip link add ... peer ... netns PID``): nothing of them is ever
in the machine's root namespace. Each machine runs Debian's ``sshd`` with a
generated host key, listening only on its underlay address; the driver's
``HOME`` has the client key and a ``known_hosts`` made from those host keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from world import World, machine_network, residue

from conftest import EXAMPLES, Result

SUBNET = "192.168.100"
NSNET = str(Path(sys.executable).parent / "nsnet")

_SSHD = """ListenAddress {address}
Port 22
HostKey {hostkey}
PidFile /run/sshd-fleet.pid
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
"""


@dataclass
class Fleet:
    """Machines by name (A, B, C ...), the switch world, and the driver's environment."""

    machines: dict[str, World]
    switch: World
    home: Path
    addresses: dict[str, str] = field(default_factory=dict)

    def drive(self, *args: str, timeout: float = 180) -> Result:
        """``nsnet ARGS`` from the operator's seat (the switch world), with the fleet's SSH keys."""
        env = {**os.environ, "HOME": str(self.home)}
        return self.switch.run(NSNET, *args, timeout=timeout, env=env)

    def drive_argv(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """The argv and environment of :meth:`drive`, for a process the test starts (and kills) itself:
        in the switch's network and mounts, not its PID namespace, so that nsenter execs nsnet (its PID is
        nsnet's)."""
        argv = ["nsenter", f"--target={self.switch.init}", "--net", "--mount", "--", NSNET, *args]
        return argv, {**os.environ, "HOME": str(self.home)}

    def inventory(self, example: str, directory: Path, **extra: object) -> Path:
        """``example`` with ``machines:`` naming the fleet's machines, written to ``directory``."""
        data = yaml.safe_load((EXAMPLES / example).read_text())
        data["machines"] = {
            name: {"underlay": {"interface": "eth1", "address": f"{address}/24"}, "nsnet": NSNET}
            for name, address in self.addresses.items()
            if name in data["hosts"]
        }
        data.update(extra)
        path = directory / example
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def links(self, name: str) -> str:
        """The links of machine ``name``'s root namespace, less ``lo`` and ``eth1`` (the machine's own)."""
        text = self.machines[name].sh("ip -o link show")
        return "\n".join(line for line in text.splitlines() if ": lo:" not in line and ": eth1@" not in line)


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def fleet(names: Sequence[str], tmp: Path) -> Iterator[Fleet]:
    """A fleet for one test (a generator for a fixture); everything of it is gone afterwards, checked."""
    before = machine_network()
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    client = _keygen(home / ".ssh" / "id_ed25519")
    (tmp / "authorized_keys").write_text(client + "\n")
    worlds: list[World] = []
    try:
        switch = World().start()
        worlds.append(switch)
        switch.sh(f"ip link add ul0 type bridge && ip addr add {SUBNET}.254/24 dev ul0 && ip link set ul0 up")
        f = Fleet({}, switch, home)
        known = []
        for i, name in enumerate(names, start=1):
            w = World().start()
            worlds.append(w)
            address = f"{SUBNET}.{i}"
            f.machines[name], f.addresses[name] = w, address
            subprocess.run(
                [
                    "nsenter",
                    f"--target={w.init}",
                    "--net",
                    "--",
                    "ip",
                    "link",
                    "add",
                    "eth1",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    name,
                    "netns",
                    str(switch.init),
                ],
                check=True,
            )
            switch.sh(f"ip link set {name} master ul0 up")
            w.sh(f"ip addr add {address}/24 dev eth1 && ip link set eth1 up && mkdir -p /run/sshd")
            hostkey = tmp / f"hostkey-{name}"
            known.append(f"{address} {_keygen(hostkey)}")
            config = tmp / f"sshd-{name}.conf"
            config.write_text(_SSHD.format(address=address, hostkey=hostkey, authorized=tmp / "authorized_keys"))
            w.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], f"/run/sshd-{name}.log")
        (home / ".ssh" / "known_hosts").write_text("\n".join(known) + "\n")
        for name, w in f.machines.items():
            w.sh(
                f"for i in $(seq 200); do ss -ltn | grep -q '{f.addresses[name]}:22 ' && exit 0; sleep 0.05; done; "
                f"cat /run/sshd-{name}.log; exit 1"
            )
        yield f
    finally:
        for w in worlds:
            w.close()
        left = [p for w in worlds if w.ids for p in residue(w.ids)]
        assert not left, f"processes outlived the fleet: {left}"
        after = machine_network()
        for key, value in before.items():
            assert after[key] == value, f"the fleet changed the machine's {key}"
