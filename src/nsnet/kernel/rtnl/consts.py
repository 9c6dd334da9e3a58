"""The numbers of the netlink protocols nsnet speaks, each defined here once (``linux/rtnetlink.h`` and friends)."""

from __future__ import annotations

# -- sockets -----------------------------------------------------------------

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
AF_UNSPEC, AF_INET, AF_BRIDGE, AF_INET6 = 0, 2, 7, 10

RTMGRP_LINK, RTMGRP_NEIGH = 0x1, 0x4
RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x10, 0x40
RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE = 0x100, 0x400
"""Multicast groups (RTNLGRP_* as a ``bind`` mask): what an event socket hears."""

# -- messages ----------------------------------------------------------------

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_GETRULE = 34
RTM_GETNSID = 90

F_REQUEST, F_MULTI, F_ACK = 0x1, 0x2, 0x4
F_DUMP_INTR = 0x10
F_CAPPED, F_ACK_TLVS = 0x100, 0x200
F_DUMP = 0x300
F_CREATE, F_EXCL, F_REPLACE, F_APPEND = 0x400, 0x200, 0x100, 0x800
NEW = F_REQUEST | F_ACK | F_CREATE | F_EXCL
"""Flags of a request that creates something (and fails if it exists)."""
CHANGE = F_REQUEST | F_ACK
"""Flags of a request that changes or deletes something."""
REPLACE = F_REQUEST | F_ACK | F_CREATE | F_REPLACE
"""Flags of a request that creates something or replaces what is there."""

NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
NLMSGERR_ATTR_MSG = 1

# -- links -------------------------------------------------------------------

IFF_UP, IFF_PROMISC, IFF_LOWER_UP = 0x1, 0x100, 0x10000
LOOPBACK_IFINDEX = 1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_PROTINFO = 1, 3, 4, 5, 10, 12
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_AF_SPEC = 16, 18, 20, 26
IFLA_NET_NS_FD, IFLA_EXT_MASK, IFLA_LINK_NETNSID = 28, 29, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_BRPORT_STATE, IFLA_BRPORT_MODE, IFLA_BRPORT_LEARNING, IFLA_BRPORT_UNICAST_FLOOD = 1, 4, 8, 9
IFLA_BRPORT_PROXYARP, IFLA_BRPORT_MCAST_FLOOD, IFLA_BRPORT_BCAST_FLOOD = 10, 27, 30
IFLA_BRPORT_NEIGH_SUPPRESS, IFLA_BRPORT_ISOLATED = 32, 33
IFLA_BR_AGEING_TIME, IFLA_BR_STP_STATE = 4, 5
VETH_INFO_PEER = 1
IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING = 1, 2, 3, 4, 7
IFLA_VXLAN_PROXY, IFLA_VXLAN_L2MISS, IFLA_VXLAN_L3MISS, IFLA_VXLAN_PORT = 11, 13, 14, 15
IFLA_INET6_ADDR_GEN_MODE = 8
IN6_ADDR_GEN_MODE_NONE = 1
IN6_ADDR_GEN_MODE_EUI64 = 0
RTEXT_FILTER_SKIP_STATS = 1 << 3
IF_OPER_UP = 6
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
"""IF_OPER_* by number, as ``ip link`` names them."""
PORT_STATES = {0: "disabled", 1: "listening", 2: "learning", 3: "forwarding", 4: "blocking"}
"""BR_STATE_* of a bridge port."""

# -- addresses, routes, rules --------------------------------------------------

IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
RTPROT_BOOT, RTPROT_STATIC = 3, 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RT_TABLE_COMPAT, RT_TABLE_MAIN = 252, 254
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_GOTO, FRA_PRIORITY, FRA_FWMARK = 1, 2, 3, 4, 6, 10
FRA_TABLE, FRA_FWMASK, FRA_OIFNAME = 15, 16, 17
FIB_RULE_INVERT = 0x2
FR_ACT_TO_TBL = 1
RT_TABLES = {253: "default", 254: "main", 255: "local"}
RT_PROTOS = {
    0: "unspec",
    1: "redirect",
    2: "kernel",
    3: "boot",
    4: "static",
    8: "gated",
    9: "ra",
    10: "mrt",
    11: "zebra",
    12: "bird",
    13: "dnrouted",
    14: "xorp",
    15: "ntk",
    16: "dhcp",
}
RT_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
"""Address and route scopes, named as ``ip`` names them."""
RT_TYPES = {
    0: "unspec",
    1: "unicast",
    2: "local",
    3: "broadcast",
    4: "anycast",
    5: "multicast",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
    9: "throw",
    10: "nat",
    11: "xresolve",
}
RULE_ACTIONS = {1: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}
FAMILIES = {AF_INET: "inet", AF_INET6: "inet6", AF_BRIDGE: "bridge"}

# -- neighbours and the fdb ----------------------------------------------------

NDA_DST, NDA_LLADDR, NDA_CACHEINFO, NDA_VLAN, NDA_MASTER = 1, 2, 3, 5, 9
NUD_INCOMPLETE, NUD_REACHABLE, NUD_STALE, NUD_DELAY = 0x01, 0x02, 0x04, 0x08
NUD_PROBE, NUD_FAILED, NUD_NOARP, NUD_PERMANENT = 0x10, 0x20, 0x40, 0x80
NUD_STATES = (
    (NUD_INCOMPLETE, "INCOMPLETE"),
    (NUD_REACHABLE, "REACHABLE"),
    (NUD_STALE, "STALE"),
    (NUD_DELAY, "DELAY"),
    (NUD_PROBE, "PROBE"),
    (NUD_FAILED, "FAILED"),
    (NUD_NOARP, "NOARP"),
    (NUD_PERMANENT, "PERMANENT"),
)
"""NUD state bits and their names, in the order ``ip neigh`` prints them."""
NTF_SELF, NTF_EXT_LEARNED, NTF_ROUTER = 0x02, 0x10, 0x80
USER_HZ = 100
"""Clock ticks per second of the times a neighbour's cache info gives."""

NETNSA_NSID, NETNSA_FD = 1, 3
