"""The `nsnet graph` command."""

from __future__ import annotations
