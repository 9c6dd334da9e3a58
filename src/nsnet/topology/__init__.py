"""From a topology file to a checked :class:`~nsnet.model.Topology`.

Schema, loading with line numbers, desugaring, checks.
"""
