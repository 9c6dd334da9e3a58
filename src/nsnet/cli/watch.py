"""The `nsnet watch` command."""

from __future__ import annotations
