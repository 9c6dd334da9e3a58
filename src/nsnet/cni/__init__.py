"""nsnet as a CNI plugin: ``nsnet-cni``, a bridge plugin for containerd, CRI-O and Kubernetes.

The runtime executes ``nsnet-cni`` once per container and command (ADD, DEL,
CHECK, VERSION, GC, STATUS), with the ``CNI_*`` environment and the network
configuration on stdin (:mod:`nsnet.cni.main`). The plugin works in the
network namespace it is started in (the node's), and in the container's
namespace named by ``CNI_NETNS``:

- :mod:`nsnet.cni.spec`: the specification's JSON shapes, versions and error codes;
- :mod:`nsnet.cni.config`: the network configuration, as the reference ``bridge`` plugin reads it;
- :mod:`nsnet.cni.ipam`: addresses from the IPAM plugin the configuration names, found on ``CNI_PATH``;
- :mod:`nsnet.cni.attach`: bridge, veth pair, addresses and routes, through nsnet's netlink;
- :mod:`nsnet.cni.rules`: iptables rules for ``ipMasq``, ``forward`` and published ports,
  in nsnet's own chains, each rule commented with the attachment it belongs to;
- :mod:`nsnet.cni.state`: what was attached, and the locks, under ``/run/nsnet/cni``.

Start-up time matters (one process per container and command): these modules
import only the standard library's lightest modules (not even json, re,
subprocess, dataclasses or typing), nsnet's netlink codec :mod:`nsnet.kernel.rtnl`
(as light) and the plugin's own small helpers: :mod:`nsnet.cni.record`,
:mod:`nsnet.cni.jsonc`, :mod:`nsnet.cni.spawn` (docs/cni.md, "Cost per call").
"""
