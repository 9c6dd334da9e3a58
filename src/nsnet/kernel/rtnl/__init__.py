"""rtnetlink by hand: nsnet's one netlink codec, packed and unpacked with :mod:`struct`.

Every netlink message nsnet sends or reads goes through this package: the
fast path of ``up``, ``down`` and ``observe`` (one socket per namespace, many
requests written in one ``send`` and their acknowledgements collected
afterwards), the readers of ``inspect`` and ``explain``, the events of
``watch`` and of the overlay controller, and the ``nsnet-cni`` plugin. It
imports only the lightest standard modules (no :mod:`socket`, :mod:`typing`
nor :mod:`dataclasses`): the plugin starts once per container.

- :mod:`~nsnet.kernel.rtnl.consts`: the protocol's numbers and their names, defined once;
- :mod:`~nsnet.kernel.rtnl.encode`: attributes and message headers;
- :mod:`~nsnet.kernel.rtnl.decode`: messages decoded into the fields nsnet uses;
- :mod:`~nsnet.kernel.rtnl.sock`: the socket (batches, dumps, events).

Everything is available from the package itself: ``rtnl.IFF_UP``, ``rtnl.attr``,
``rtnl.LinkMsg``, ``rtnl.Socket``.
"""

from __future__ import annotations

from nsnet.kernel.rtnl.consts import *  # noqa: F403
from nsnet.kernel.rtnl.decode import *  # noqa: F403
from nsnet.kernel.rtnl.encode import *  # noqa: F403
from nsnet.kernel.rtnl.sock import *  # noqa: F403
