"""``nsnet capture``: many capture points, one timeline, decoded like tcpdump, saved as pcapng.

- :mod:`.points`: ``NODE:IFACE`` specs resolved in a lab, short tags (``R``, ``~``, ``B``);
- :mod:`.bpf`: tcpdump filter syntax compiled by libpcap, attached in the kernel;
- :mod:`.ring`: an AF_PACKET socket with a TPACKET_V3 ring per point, in the point's namespace;
- :mod:`.timeline`: the capture loop merging points by kernel timestamp; packets grouped across points;
- :mod:`.decode`: frames decoded by dpkt and worded like ``tcpdump -n -e``; :mod:`.fields`: the same as JSON;
- :mod:`.pcapng`: files with one interface per capture point;
- :mod:`.render`: text, JSON and pcapng sinks.
"""

from __future__ import annotations

from nsnet.capture.bpf import compile_filter
from nsnet.capture.decode import Decoded, Decoder
from nsnet.capture.fields import fields
from nsnet.capture.frames import Frame
from nsnet.capture.pcapng import Interface, Writer, read
from nsnet.capture.points import Point, assign_tags, resolve, split_args
from nsnet.capture.render import JsonSink, PcapngSink, TextSink, legend
from nsnet.capture.ring import Counters, Ring
from nsnet.capture.timeline import Group, Grouper, LiveCapture, Sink, run

__all__ = [
    "Counters",
    "Decoded",
    "Decoder",
    "Frame",
    "Group",
    "Grouper",
    "Interface",
    "JsonSink",
    "LiveCapture",
    "PcapngSink",
    "Point",
    "Ring",
    "Sink",
    "TextSink",
    "Writer",
    "assign_tags",
    "compile_filter",
    "fields",
    "legend",
    "read",
    "resolve",
    "run",
    "split_args",
]
