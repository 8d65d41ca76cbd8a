"""The real client address behind trusted proxies (the router, an ingress).

Rate limits and per-client caps key on ``request.remote``; behind a proxy every request
would come from the proxy. When the peer is a trusted proxy, the address is taken from
``X-Forwarded-For``: the rightmost hop that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


class TrustedProxies:
    """A set of networks whose ``X-Forwarded-For`` is believed."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: list[IpNetwork] = [ipaddress.ip_network(n, strict=False) for n in networks]

    def trusts(self, address: str | None) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        ip = _parse(address) if address else None
        return ip is not None and any(ip in net for net in self.networks)

    def client_address(self, remote: str | None, forwarded_for: str | None) -> str | None:
        """The client: ``remote`` unless it is a trusted proxy that forwarded someone."""
        if not forwarded_for or not self.trusts(remote):
            return remote
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if _parse(hop) is None:  # garbage: stop believing the chain here
                return remote
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else remote


def forwarded_middleware(networks: Iterable[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """aiohttp middleware replacing ``request.remote`` with the forwarded client."""
    proxies = TrustedProxies(networks)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if proxies.networks:
            client = proxies.client_address(request.remote, request.headers.get("X-Forwarded-For"))
            if client is not None and client != request.remote:
                request = request.clone(remote=client)
        return await handler(request)

    return middleware
