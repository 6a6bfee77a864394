"""An identity from a header set by an SSO reverse proxy (oauth2-proxy and the like); off by default.

The header is believed only from the proxies' own addresses: anyone else who can reach the service
could set it to any name. The named user must exist in the registry (the role comes from there) and
not be disabled. See docs/service.md, "Identities and access", for the risks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.identity import events
from pipeline.identity.actors import USER_NAME, Identity
from pipeline.identity.models import UserRow
from pipeline.identity.users import identity_of


@dataclass(frozen=True)
class ProxySettings:
    trusted_proxy_header: str | None = None  # e.g. X-Forwarded-User; None: the proxy login is off
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks (10.0.0.5, 10.0.0.0/24, ::1)

    @property
    def enabled(self) -> bool:
        return bool(self.trusted_proxy_header) and bool(self.trusted_proxies)


def _networks(settings: ProxySettings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
    except ValueError as exc:
        raise ValueError(f"service.trusted_proxies: {exc}; give addresses or networks like 10.0.0.5 or 10.0.0.0/24") from exc


def from_trusted_proxy(client_addr: str | None, settings: ProxySettings) -> bool:
    if not settings.enabled or not client_addr:
        return False
    try:
        address = ipaddress.ip_address(client_addr)
    except ValueError:
        return False
    return any(address in network for network in _networks(settings))


def identity_from_proxy(session: Session, header_value: str | None, client_addr: str | None,
                        settings: ProxySettings, audit=None) -> Identity | None:
    """The user the proxy vouches for (source ``proxy``), or None: the login is off, the request did
    not come from a trusted proxy (the header is then ignored, whatever it says), no header, or no
    such enabled user. With ``audit``, a header from a trusted proxy naming no usable user is logged."""
    if not from_trusted_proxy(client_addr, settings) or not header_value:
        return None
    name = header_value.strip()
    row = session.execute(select(UserRow).where(UserRow.name == name)).scalar_one_or_none() if USER_NAME.match(name) else None
    if row is None or row.disabled:
        if audit is not None:
            events.record_login_failed(audit, name, "proxy", "unknown-user" if row is None else "disabled", client_addr)
        return None
    return identity_of(row, "proxy")
