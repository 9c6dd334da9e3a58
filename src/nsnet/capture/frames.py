"""A captured frame, as every part of ``nsnet capture`` passes it around.

A frame is a plain tuple (the capture loop makes hundreds of thousands a
second): ``(ts, seq, point, pkttype, wirelen, data)``:

- ``ts``: kernel timestamp, nanoseconds since the epoch;
- ``seq``: arrival number, to keep frames with equal timestamps in order;
- ``point``: index of the capture point (and of its pcapng interface);
- ``pkttype``: the kernel's ``sockaddr_ll`` packet type: 0 to us, 1 broadcast,
  2 multicast, 3 to another host (seen in promiscuous mode), 4 outgoing;
- ``wirelen``: length on the wire;
- ``data``: the bytes captured (``wirelen`` or fewer), from the Ethernet header on.
"""

from __future__ import annotations

Frame = tuple[int, int, int, int, int, bytes]

TS, SEQ, POINT, PKTTYPE, WIRELEN, DATA = range(6)
PKTTYPE_HOST, PKTTYPE_BROADCAST, PKTTYPE_MULTICAST, PKTTYPE_OTHERHOST, PKTTYPE_OUTGOING = range(5)
PKTTYPES = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost", 4: "outgoing"}


def direction(pkttype: int) -> str:
    return "out" if pkttype == PKTTYPE_OUTGOING else "in"
