"""Delegation to the IPAM plugin the configuration names (``ipam.type``), found on ``CNI_PATH``.

The IPAM plugin runs with this plugin's environment and the configuration
exactly as it came on stdin, as the specification asks. One difference: an
IPAM plugin that does not speak the configuration's version (the reference
plugins of Debian 12 stop at 1.0.0) is asked in the highest version both
speak, rather than failing the whole ADD.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from nsnet.cni import jsonc as json
from nsnet.cni import spawn, spec
from nsnet.cni.config import NetConf, parse_json
from nsnet.cni.spec import CniError

TYPE_CHECKING = False  # typing is not imported at run time: the plugin starts once per container
if TYPE_CHECKING:
    from typing import Any


def find_plugin(kind: str, cni_path: str) -> str:
    """The executable of plugin ``kind`` in the first ``CNI_PATH`` directory holding one."""
    if not kind or "/" in kind or kind in (".", ".."):
        raise CniError(spec.INVALID_CONFIG, f"invalid plugin type {kind!r}")
    dirs = [d for d in cni_path.split(os.pathsep) if d]
    for directory in dirs:
        candidate = os.path.join(directory, kind)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(spec.INVALID_CONFIG, f"failed to find plugin {kind!r} in path {dirs}")


def execute(path: str, command: str, stdin: bytes, env: Mapping[str, str]) -> dict[str, Any] | None:
    """Run a plugin as a runtime does; its JSON answer, or ``None`` when it prints nothing.

    A plugin's error is raised as :class:`CniError` with the plugin's own code and message.
    """
    try:
        proc = spawn.run([path], stdin, {**env, "CNI_COMMAND": command}, timeout=300)
    except TimeoutError:
        raise CniError(spec.TRY_AGAIN_LATER, f"{path} {command} did not answer within 300 s") from None
    except OSError as exc:
        raise CniError(spec.INTERNAL, f"cannot run {path}: {exc.strerror or exc}") from None
    name = os.path.basename(path)
    out = proc.out.strip()
    if proc.code != 0:
        try:
            data = json.loads(out) if out else None
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("code"), int):
            msg = f"{name}: {data.get('msg', '')}"
            raise CniError(data["code"], msg, str(data.get("details", "")))
        why = proc.err.decode(errors="replace").strip() or out.decode(errors="replace")
        raise CniError(spec.INTERNAL, f"{name} {command} failed (exit status {proc.code})", why)
    if not out:
        return None
    data = parse_json(out, f"the answer of {name} to {command}")
    if not isinstance(data, dict):
        raise CniError(spec.DECODING_FAILURE, f"the answer of {name} to {command} is not a JSON object")
    return data


class Ipam:
    """The IPAM plugin of one configuration, run with one environment."""

    def __init__(self, conf: NetConf, env: Mapping[str, str]) -> None:
        self.conf = conf
        self.env = dict(env)
        kind = conf.ipam_type or ""
        self.path = find_plugin(kind, env.get("CNI_PATH", ""))
        self._versions: list[str] | None = None

    def supported_versions(self) -> list[str]:
        if self._versions is None:
            answer = execute(self.path, "VERSION", json.dumps({"cniVersion": self.conf.version}).encode(), self.env)
            versions = (answer or {}).get("supportedVersions")
            self._versions = [v for v in versions if isinstance(v, str)] if isinstance(versions, list) else []
        return self._versions

    def speaks(self, version: str) -> bool:
        return any(v in self.supported_versions() and spec.at_least(v, version) for v in self.supported_versions())

    def _run(self, command: str) -> dict[str, Any] | None:
        try:
            return execute(self.path, command, self.conf.stdin, self.env)
        except CniError as exc:
            if exc.code != spec.INCOMPATIBLE_VERSION:
                raise
            older = spec.best_common(self.conf.version, self.supported_versions())
            if older is None or older == self.conf.version:
                raise
        downgraded = dict(self.conf.raw, cniVersion=older)
        return execute(self.path, command, json.dumps(downgraded).encode(), self.env)

    def add(self) -> dict[str, Any]:
        """Addresses for the container: the IPAM result, as 1.x lists (``ips``, ``routes``, ``dns``)."""
        answer = self._run("ADD")
        if answer is None:
            raise CniError(spec.DECODING_FAILURE, f"{os.path.basename(self.path)} ADD returned no result")
        return spec.normalise_result(answer, f"the result of {os.path.basename(self.path)}")

    def delete(self) -> None:
        self._run("DEL")

    def check(self) -> None:
        self._run("CHECK")

    def gc(self) -> None:
        """GC in the IPAM plugin, if it knows the command (spec 1.1.0)."""
        if self.speaks("1.1.0"):
            execute(self.path, "GC", self.conf.stdin, self.env)

    def status(self) -> None:
        """STATUS of the IPAM plugin, if it knows the command (spec 1.1.0)."""
        if self.speaks("1.1.0"):
            execute(self.path, "STATUS", self.conf.stdin, self.env)
