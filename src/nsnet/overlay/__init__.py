"""VXLAN overlays across hosts: who is where (:mod:`.endpoints`), the etcd
registry (:mod:`.registry`) and the controller answering the kernel's misses
(:mod:`.controller`)."""
