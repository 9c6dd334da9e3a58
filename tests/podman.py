"""A real podman (Debian's 4.3) with its CNI backend in a private world, for tests of nsnet-cni.

Everything podman reads and writes is the world's: ``/etc/containers``
(``containers.conf``, ``storage.conf``, ``policy.json``), ``/etc/cni`` (the
network configuration directory, ``/etc/cni/net.d``) and ``/var/lib`` (image
store, libcni's result cache, host-local's reservations) are covered by
tmpfs, and ``/run`` (run root, network namespaces, nsnet-cni's state) is one
already. Podman runs rootful with ``--network-backend cni``, the ``runc``
runtime and cgroupfs (``crun`` refuses this machine's hybrid cgroups), its
containers' cgroups under a parent of the test's, removed with
:func:`dockerd.remove_cgroups` once the world is gone. Plugins are found in
``/run/nsnet-podman/cni/bin`` (``nsnet-cni``: the launcher docs/cni.md
installs) and then ``/usr/lib/cni`` (the reference plugins).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from world import World

from conftest import Result

PODMAN = "/usr/bin/podman"
BASE = "/run/nsnet-podman"
PLUGINS = f"{BASE}/cni/bin"
NET_D = "/etc/cni/net.d"
IMAGE = "localhost/nsnet-busybox:test"
PRIVATE_DIRS = ("/etc/containers", "/etc/cni", "/var/lib")
"""The machine's directories a podman world covers with tmpfs."""
NSNET_CNI = Path(sys.executable).parent / "nsnet-cni"

CONTAINERS_CONF = f"""\
[network]
network_backend = "cni"
cni_plugin_dirs = ["{PLUGINS}", "/usr/lib/cni"]
network_config_dir = "{NET_D}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""
STORAGE_CONF = """\
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
"""
POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}\n'


def missing() -> str | None:
    """What is missing to run podman here, or None."""
    for tool in (PODMAN, "conmon", "runc", "/bin/busybox", "/usr/lib/cni/host-local", str(NSNET_CNI)):
        if shutil.which(tool) is None:
            return f"{tool} is missing: scripts/setup.sh installs podman, runc, busybox-static and the CNI plugins"
    return None


@dataclass
class Podman:
    """podman in ``world``; ``cgroup_parent`` names its containers' cgroup parent."""

    world: World
    cgroup_parent: str

    def setup(self) -> None:
        """Podman's configuration, the nsnet-cni wrapper in the plugin directory, and the test image."""
        files = {
            "/etc/containers/containers.conf": CONTAINERS_CONF,
            "/etc/containers/storage.conf": STORAGE_CONF,
            "/etc/containers/policy.json": POLICY,
            f"{PLUGINS}/nsnet-cni": f"#!{sys.executable} -I\nfrom nsnet.cni.main import run\n\nrun()\n",
        }
        for path, text in files.items():
            self.write(path, text)
        self.world.sh(f"chmod 755 {PLUGINS}/nsnet-cni; mkdir -p {NET_D} {BASE}/tmp")
        self.import_busybox()

    def write(self, path: str, text: str) -> None:
        """Write a file in the world."""
        self.world.sh(f"mkdir -p {os.path.dirname(path)}")
        done = self.world.run("tee", path, input=text)
        assert done.code == 0, done.text

    def conflist(self, data: dict[str, Any], filename: str) -> None:
        """A network configuration list in podman's CNI directory."""
        self.write(f"{NET_D}/{filename}", json.dumps(data, indent=2) + "\n")

    def cli(self, *args: str, timeout: float = 120) -> Result:
        env = {**self.world.env, "TMPDIR": f"{BASE}/tmp"}  # podman import stages the image there, not in /var/tmp
        return self.world.run(PODMAN, *args, timeout=timeout, env=env)

    def ok(self, *args: str, timeout: float = 120) -> str:
        done = self.cli(*args, timeout=timeout)
        assert done.code == 0, f"podman {' '.join(args)} failed ({done.code}): {done.text}"
        return done.out

    def run(self, name: str, network: str, *argv: str, publish: str | None = None) -> None:
        """``podman run -d`` a container of the test image on ``network``."""
        args = ["run", "-d", "--name", name, "--network", network, f"--cgroup-parent=/{self.cgroup_parent}"]
        args.append("--cap-add=NET_RAW")  # busybox's ping opens a raw socket; podman drops NET_RAW by default
        if publish:
            args += ["-p", publish]
        self.ok(*args, IMAGE, *argv)

    def exec(self, name: str, *argv: str, timeout: float = 60) -> Result:
        return self.cli("exec", name, *argv, timeout=timeout)

    def address(self, name: str) -> str:
        """The container's IPv4 address on eth0."""
        shown = self.exec(name, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
        assert shown.code == 0, shown.text
        return shown.out.split()[3].split("/")[0]

    def import_busybox(self) -> None:
        """``podman import`` a busybox-static rootfs (``sh ping ip sleep httpd wget cat``) as IMAGE."""
        self.world.sh(
            f"mkdir -p {BASE}/rootfs/bin {BASE}/rootfs/www && cp /bin/busybox {BASE}/rootfs/bin/\n"
            f"for tool in sh ping ip sleep httpd wget cat hostname; do ln -s busybox {BASE}/rootfs/bin/$tool; done\n"
            f"echo nsnet-podman > {BASE}/rootfs/www/index.html\n"
            f"tar -C {BASE}/rootfs -c . | TMPDIR={BASE}/tmp {PODMAN} import - {IMAGE} >/dev/null"
        )
