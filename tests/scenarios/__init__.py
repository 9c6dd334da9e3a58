"""A deterministic generator of explain scenarios: base labs, raw-command mutations, real traffic, the verdict.

``labs`` describes the base labs and their flows, ``mutations`` the catalogue of changes made by hand with
``ip``/``iptables``/``nft``/``sysctl``/``bridge`` (each with its undo and the words explain must say),
``traffic`` sends the real packets, ``state`` reads and restores a lab's baseline, ``runner`` runs one
scenario and ``report`` turns results into the agreement table.
"""
