"""Test doubles for code built on nsnet: :mod:`.fakekernel`, a kernel in memory for the engine."""
