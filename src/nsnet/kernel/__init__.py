"""Kernel backends: namespaces, netlink (nsnet's own codec, :mod:`nsnet.kernel.rtnl`), sysctls and iptables."""
