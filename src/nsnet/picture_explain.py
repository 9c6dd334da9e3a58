"""``explain``'s answer on a picture: the namespace where the packet dies is marked, with why."""

from __future__ import annotations

from dataclasses import replace

from nsnet.explain.verdict import Explanation, Leg
from nsnet.picture import Picture


def _death(legs: list[Leg]) -> tuple[str, str] | None:
    """The node where the first leg that is not delivered ends, and why."""
    for i, leg in enumerate(legs):
        if leg.outcome in ("delivered", "refused") or not leg.steps:
            continue
        step = next((s for s in reversed(leg.steps) if not s.ok), leg.steps[-1])
        which = "the request" if i == 0 else "the reply"
        return step.node, f"{which} is {leg.outcome} here: {leg.reason or step.text}"
    return None


def marked(picture: Picture, explanation: Explanation) -> Picture:
    """``picture`` with the namespace where ``explain`` says the packet dies marked, and a note of the verdict."""
    death = _death(explanation.legs)
    head = f"explain {explanation.src} -> {explanation.dst} ({explanation.proto}): {explanation.verdict}"
    if death is None:
        return replace(picture, notes=(*picture.notes, head))
    node, why = death
    boxes = tuple(replace(box, mark=why) if box.label == node else box for box in picture.boxes)
    return replace(picture, boxes=boxes, notes=(*picture.notes, head))
