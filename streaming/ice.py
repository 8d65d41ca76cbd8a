"""Which local addresses aiortc offers as ICE host candidates.

aioice discovers every interface address and always leaves out 127.0.0.1. A server
(or a test) that must stay on loopback, or that should offer only chosen
interfaces, sets ``server.ice_host_addresses``. aioice has no per-connection hook
for this, so the choice applies to the whole process; it is set once at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aioice.ice

log = logging.getLogger(__name__)

_discover = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Offer exactly ``addresses`` as host candidates (None or empty: discover them)."""
    if not addresses:
        aioice.ice.get_host_addresses = _discover
        return
    fixed = list(addresses)

    def _fixed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = _fixed
    log.info("ICE host candidates limited to %s", ", ".join(fixed))
