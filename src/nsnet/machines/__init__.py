"""Labs across real machines: a machine's share of a multi-host lab, and the driver that builds them all."""
