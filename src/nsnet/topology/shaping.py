"""Link shaping: a rate limit (tbf), delay and loss (netem) on a link's egress."""

from __future__ import annotations

BURST = "32kbit"
LATENCY = "50ms"


def qdisc(rate: str | None, delay: str | None, loss: float | None) -> str | None:
    """The ``tc qdisc`` words for a link's shaping, or None for none.

    Rate alone is tbf; delay or loss is netem (with ``rate`` when both are asked).
    """
    if delay is None and loss is None:
        return f"tbf rate {rate} burst {BURST} latency {LATENCY}" if rate else None
    words = ["netem"]
    if delay is not None:
        words += ["delay", delay]
    if loss is not None:
        words += ["loss", f"{loss:g}%"]
    if rate is not None:
        words += ["rate", rate]
    return " ".join(words)
