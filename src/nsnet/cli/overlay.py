"""The `nsnet overlay` commands: the overlay registry's contents, and the controllers that answer VXLAN misses."""

from __future__ import annotations

import ipaddress
import signal
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING

import click
from rich.table import Table

from nsnet.cli import complete
from nsnet.cli._common import emit_json, fail, guard, main, out
from nsnet.engine import preflight
from nsnet.errors import LabNotFoundError

if TYPE_CHECKING:
    from nsnet.overlay.endpoints import HostView, OverlayEndpoint


@main.group(context_settings={"help_option_names": ["-h", "--help"]})
def overlay() -> None:
    """VXLAN overlays across hosts: the etcd registry of endpoints, and the controllers answering misses.

    \b
      nsnet overlay registry LAB        run etcd, the registry, on the lab's underlay
      nsnet overlay serve LAB           answer every host's L2/L3 misses from the registry
      nsnet overlay ls LAB              who is registered where
    """


@overlay.command()
@click.argument("lab", shell_complete=complete.labs)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Keep etcd's data here (default: a temporary one).")
@guard
def registry(lab: str, data_dir: str | None) -> None:
    """Run etcd for LAB in its underlay namespace, at the lab's registry URL, until Ctrl-C.

    \b
    The lab's hosts reach it over the underlay, as machines would reach
    theirs: the URL (overlay.registry, by default http://<the underlay's
    address>:2379) must be an address of the underlay namespace. etcd runs
    as a single member, its data in a temporary directory removed when it
    stops (unless --data-dir).
    """
    preflight.require_root("run etcd in the lab's underlay namespace")
    from nsnet.engine import directory, lifecycle
    from nsnet.kernel import netns
    from nsnet.model import UNDERLAY
    from nsnet.overlay import etcd

    url = _registry(lab, None)
    underlay = directory.namespace_of(lab, UNDERLAY)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scratch: list[str] = []

    def record(path: str) -> None:  # before etcd starts: `down` removes it, even if this process is killed
        lifecycle.record_scratch(lab, path)
        scratch.append(path)

    try:
        with etcd.running(underlay, url, data_dir, on_scratch=record) as proc:
            out.print(f"etcd for lab {lab}: {url} in {underlay} (pid {proc.pid}); Ctrl-C stops it", markup=False)
            # Until Ctrl-C, etcd's own end, or the lab's: its namespace gone, nothing could reach etcd any more.
            while not stop.wait(0.5) and proc.poll() is None and netns.exists(underlay):
                pass
    finally:
        for path in scratch:
            lifecycle.forget_scratch(lab, path)
    out.print(f"etcd for lab {lab}: stopped", markup=False)


def _views(lab: str) -> dict[str, HostView]:
    from nsnet.overlay.endpoints import lab_views

    return lab_views(lab)[0]


def _registry(lab: str, url: str | None) -> str:
    from nsnet.overlay.endpoints import lab_views

    if url:
        return url
    found = lab_views(lab)[1]
    if found is None:
        fail(f"lab {lab} has no overlay registry (not a dynamic overlay?): give one with --registry URL")
    return found


@overlay.command()
@click.argument("lab", shell_complete=complete.labs)
@click.option("--host", "hosts", multiple=True, metavar="H", help="Serve only host H (repeat; default: every host).")
@click.option(
    "--registry", metavar="URL", help="etcd client URL, e.g. http://192.168.100.254:2379 (default: the lab's)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line and event.")
@click.option("--ttl", type=click.IntRange(min=1), default=5, show_default=True, help="Lease TTL of the endpoints (s).")
@click.option(
    "--no-announce",
    "quiet",
    is_flag=True,
    help="No gratuitous ARP after an answered L3 miss (nodes wait a retransmit).",
)
@click.option("--machine", metavar="M", help="Serve machine M's share of a lab across machines (its root namespace).")
@guard
def serve(
    lab: str, hosts: tuple[str, ...], registry: str | None, as_json: bool, ttl: int, quiet: bool, machine: str | None
) -> None:
    """Answer the VXLAN L2/L3 misses of LAB's hosts from the etcd registry, and publish their endpoints.

    \b
    One controller per host, inside the host's network namespace (its netlink
    socket and its etcd connections are made there: etcd is reached over the
    underlay). Each line is one event and what was done, e.g.
      A l3miss 10.0.0.4 dev vxlan1 -> 02:42:0a:00:00:04 via 192.168.100.3 (announced on br0)
    An answered IPv4 L3 miss is followed by a gratuitous ARP on the device's
    bridge, so the node that asked need not wait for its ARP retransmit.
    Runs until Ctrl-C or SIGTERM, or the lab is brought down; then withdraws
    the hosts' endpoints (and removes nothing else).

    \b
    With --machine M, on a real machine: serves M's share of LAB, whose host
    is this machine's root namespace, for as long as it runs (a service):
    it waits for the lab to be up here, withdraws M's nodes when the lab is
    brought down, and serves it again when it comes back.
    """
    preflight.require_root("serve the overlay in the hosts' namespaces")
    from nsnet.overlay.log import printer
    from nsnet.overlay.serve import serve as run

    if machine is not None:
        from nsnet.cli.machines import serve_machine

        serve_machine(lab, machine, registry, as_json, ttl, not quiet)
        return

    url = _registry(lab, registry)
    current = _views(lab)
    unknown = sorted(set(hosts) - set(current))
    if unknown:
        fail(f"no host {', '.join(unknown)} in lab {lab} (hosts: {', '.join(sorted(current)) or 'none'})")
    if not current:
        fail(f"lab {lab} has no overlay hosts")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sink = printer(as_json, stop)

    def views() -> dict[str, HostView]:
        try:
            return _views(lab)
        except LabNotFoundError:
            stop.set()  # the lab was brought down: nothing left to serve
            return {}

    run(lab, views, url, sink, stop, hosts=hosts or None, ttl=ttl, announce=not quiet)


@overlay.command("ls")
@click.argument("lab", shell_complete=complete.labs)
@click.option("--registry", metavar="URL", help="etcd client URL (default: the lab's).")
@click.option("--host", metavar="H", help="Reach the registry from host H's namespace (default: the lab's first host).")
@click.option("--netns", "namespace", metavar="NS", help="Reach the registry from network namespace NS.")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
@guard
def ls(lab: str, registry: str | None, host: str | None, namespace: str | None, as_json: bool) -> None:
    """List the endpoints LAB's overlay registry holds: VNI, IP, MAC, VTEP, host and node."""
    from nsnet.kernel import netns
    from nsnet.model import ROOT_NS
    from nsnet.overlay.registry import Registry

    url = _registry(lab, registry)
    if namespace is None and (host is not None or registry is None):
        views = _views(lab)
        if host is not None and host not in views:
            fail(f"no host {host} in lab {lab} (hosts: {', '.join(sorted(views)) or 'none'})")
        if views:
            namespace = views[host or sorted(views)[0]].netns
    if namespace is not None:
        preflight.require_root("reach the registry from a host's namespace")
    with netns.entered(namespace or ROOT_NS):
        reg = Registry(url, lab)
        try:
            endpoints = sorted(reg.snapshot().values(), key=_order)
        finally:
            reg.close()
    if as_json:
        emit_json([asdict(e) for e in endpoints], "endpoint")
        return
    if not endpoints:
        out.print(f"no endpoints registered for lab {lab} at {url}", markup=False)
        return
    table = Table("VNI", "IP", "MAC", "VTEP", "HOST", "NODE", "IFACE", box=None, pad_edge=False, header_style="bold")
    for e in endpoints:
        table.add_row(str(e.vni), e.ip, e.mac, e.vtep, e.host, e.node, e.iface)
    out.print(table)


def _order(e: OverlayEndpoint) -> tuple[int, int, int, str]:
    try:
        address = ipaddress.ip_address(e.ip)
        return e.vni, address.version, int(address), e.ip
    except ValueError:
        return e.vni, 9, 0, e.ip
