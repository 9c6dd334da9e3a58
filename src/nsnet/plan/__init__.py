"""Desired state against live state: the ordered actions that make one the other (pure)."""
