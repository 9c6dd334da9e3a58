"""Kernel backends: namespaces, netlink (pyroute2), sysctls and iptables."""
