"""The `nsnet inspect` command."""

from __future__ import annotations
