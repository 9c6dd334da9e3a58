"""VXLAN overlays across hosts.

:mod:`.endpoints` says who is where, :mod:`.build` what a multi-host lab adds
to its namespaces, :mod:`.registry` talks to etcd, :mod:`.etcd` runs it,
:mod:`.controller` answers one host's misses, :mod:`.serve` runs a controller
per host, :mod:`.log` prints what they do.
"""
