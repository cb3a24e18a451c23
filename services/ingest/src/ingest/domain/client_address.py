"""Which address a request comes from, behind proxies (pure).

``X-Forwarded-For`` is a list each proxy appends to: ``client, proxy1, proxy2``, and the peer is the last
proxy. Everything left of the first proxy we trust was written by someone we do not, so the first hop is
whatever the client chose. The client is therefore the right-most address that is not a trusted proxy,
read from the peer leftwards; if every address is a trusted proxy, the left-most one.
"""

from __future__ import annotations

import functools
import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def proxy_networks(text: str) -> tuple[IPNetwork, ...]:
    """``10.0.0.0/8, 192.168.1.7`` as networks; raises ValueError naming an entry that is not a CIDR."""
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"INGEST_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR") from exc
    return tuple(networks)


def _trusted(address: str, proxies: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address at all: certainly not one of our proxies
    return any(ip in network for network in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: tuple[IPNetwork, ...]) -> str:
    """The client's address for a request from ``peer`` carrying ``X-Forwarded-For: forwarded_for``."""
    if not proxies or not forwarded_for or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
    return hops[0][:64] if hops else peer
