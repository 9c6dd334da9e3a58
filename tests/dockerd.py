"""A real Docker daemon (Debian's ``docker.io``) in a private world, for tests.

dockerd runs with everything of its own under the world's ``/run`` (a tmpfs):
data root, exec root, socket and pid file; ``/etc/docker`` is covered by a
tmpfs too (the machine's ``daemon.json`` is not read, dockerd's ``key.json``
is not written there). It sets up iptables as on any Docker host
(``--iptables=true``), in the world's root namespace. Storage is
``overlay2``, Docker's default, or ``vfs`` (plain copies: the test image is a
few MiB) where the kernel cannot mount overlayfs over tmpfs; the runtime is
``runc`` with cgroupfs (``crun`` refuses a hybrid cgroup hierarchy such as
this machine's: "cgroups in hybrid mode not supported"). Containers' cgroups are made under a
parent of their own, removed with :func:`remove_cgroups` once the world is gone.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from world import World

from conftest import Result

DOCKER = "/usr/bin/docker"
"""Debian's client, whatever other ``docker`` is first on PATH."""
BASE = "/run/nsnet-docker"
SOCKET = f"unix://{BASE}/docker.sock"
IMAGE = "nsnet-busybox:test"
CGROUPS = "/sys/fs/cgroup"


def missing() -> str | None:
    """What is missing to run Docker here, or None."""
    for tool in ("dockerd", "containerd", "runc", DOCKER, "/bin/busybox"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: scripts/setup.sh installs docker.io, containerd, runc and busybox-static"
    return None


class DockerdExited(AssertionError):
    """dockerd exited instead of answering."""


@dataclass
class Docker:
    """dockerd in ``world``; ``cgroup_parent`` names its containers' cgroup parent."""

    world: World
    cgroup_parent: str

    driver: str = "overlay2"

    def start(self, timeout: float = 30) -> float:
        """Start dockerd and wait until it answers; returns how long that took (seconds).

        With overlay2, a dockerd that exits at once (overlayfs unusable) is started again with vfs.
        """
        try:
            return self._start(timeout)
        except DockerdExited:
            if self.driver != "overlay2":
                raise
            self.driver = "vfs"
            return self._start(timeout)

    def _start(self, timeout: float) -> float:
        started = time.monotonic()
        argv = [
            "dockerd",
            f"--data-root={BASE}/data",
            f"--exec-root={BASE}/exec",
            f"--pidfile={BASE}/docker.pid",
            f"--host={SOCKET}",
            "--iptables=true",
            f"--storage-driver={self.driver}",
            "--exec-opt=native.cgroupdriver=cgroupfs",
            f"--cgroup-parent=/{self.cgroup_parent}",
            "--default-runtime=runc",
        ]
        self.world.sh(f"mkdir -p {BASE}")
        self.world.spawn(argv, f"{BASE}/dockerd.log")
        while self.cli("version").code != 0:
            if self.world.run("pgrep", "-x", "dockerd").code != 0:  # the world's processes only
                raise DockerdExited(f"dockerd ({self.driver}) exited:\n{self.log()}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"dockerd did not answer within {timeout} s:\n{self.log()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self, timeout: float = 30) -> float:
        """Stop dockerd (SIGTERM, as its service does) and wait until it is gone; returns how long it took."""
        started = time.monotonic()
        self.world.sh(
            f"pid=$(cat {BASE}/docker.pid); kill -TERM $pid; "
            f"for i in $(seq {int(timeout * 20)}); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.05; done; exit 1"
        )
        return time.monotonic() - started

    def restart(self) -> float:
        return self.stop() + self.start()

    def cli(self, *args: str, timeout: float = 120) -> Result:
        return self.world.run(DOCKER, f"--host={SOCKET}", *args, timeout=timeout)

    def log(self) -> str:
        return self.world.run("tail", "-n", "40", f"{BASE}/dockerd.log").out

    def import_busybox(self) -> None:
        """``docker import`` a rootfs of busybox-static (``sh``, ``ping``, ``ip``, ``sleep``, ``httpd``) as IMAGE."""
        self.world.sh(
            f"mkdir -p {BASE}/rootfs/bin && cp /bin/busybox {BASE}/rootfs/bin/\n"
            f"for tool in sh ping ip sleep httpd; do ln -s busybox {BASE}/rootfs/bin/$tool; done\n"
            f"tar -C {BASE}/rootfs -c . | {DOCKER} --host={SOCKET} import - {IMAGE} >/dev/null"
        )


def remove_cgroups(parent: str) -> list[str]:
    """Remove the (empty) cgroups under ``parent`` in every hierarchy; those that could not be removed."""
    left = []
    for hierarchy in sorted(Path(CGROUPS).iterdir()) if Path(CGROUPS).is_dir() else []:
        top = hierarchy / parent
        if not top.is_dir():
            continue
        for path, _, _ in sorted(os.walk(top), key=lambda entry: -entry[0].count("/")):
            try:
                os.rmdir(path)
            except OSError:
                left.append(path)
    return left
