"""The data-use guard for credentialed sources (MIMIC-IV under the PhysioNet agreement).

Records of a credentialed source may only go to the embedded model or a server on this
machine, unless the user names the remote host explicitly. Decided before any call, preflight
included, and recorded as an event either way:

- the URL's host is **resolved**, and every address it resolves to must be loopback (an
  IPv4-mapped IPv6 address counts as its IPv4 address; decimal and hex spellings such as
  ``2130706433`` resolve like any name): a ``*.localhost`` name or a name in /etc/hosts is
  only as local as the addresses behind it;
- the backend then connects to those addresses only (they are pinned), so a second lookup
  cannot send the packet elsewhere;
- the HTTP clients follow no redirect and read no proxy variable (``medstore/llm/http.py``),
  so neither a 307 nor ``HTTP_PROXY`` can take the packet off the machine.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlparse

from medstore.llm import Backend, BackendUnavailable
from medstore.warehouse.events import DataUseDecision


class DataUseRefused(BackendUnavailable):
    """A credentialed source would go to a remote host the user did not allow: one line."""


def resolve(host: str, port: int | None) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), in a stable order; [] if none."""
    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


def is_loopback_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def decide_data_use(backend: Backend, allowed_hosts: Iterable[str] = ()) -> DataUseDecision:
    """Allow the embedded model and servers whose every address is loopback; a remote host
    only when named. Pins the backend to the addresses the decision was made on."""
    if backend.base_url is None:
        return decision(backend, True, "embedded", f"{backend.name}: embedded model")
    url = urlparse(backend.base_url)
    host = url.hostname
    allowed = {name.strip().lower().rstrip(".") for name in allowed_hosts if name.strip()}
    addresses = resolve(host, url.port) if host else []
    if host and host.lower().rstrip(".") in allowed:
        return decision(
            backend, True, "allowed_remote_host", f"{host} named by --allow-remote-host "
            "(the user's decision)", addresses,
        )  # fmt: skip
    if addresses and all(is_loopback_address(address) for address in addresses):
        pin = getattr(backend, "pin_addresses", None)
        if pin is not None:
            pin(host, addresses)
        return decision(
            backend, True, "loopback", f"{host} resolves to {', '.join(addresses)} only: on "
            "this machine", addresses,
        )  # fmt: skip
    found = f"resolves to {', '.join(addresses)}" if addresses else "does not resolve"
    return decision(
        backend, False, "refused_remote_host",
        f"refusing to send credentialed data to {host or backend.base_url} ({found}): only the "
        "embedded model or a server whose every address is loopback may receive it; if this "
        f"host retains nothing and your data use agreement allows it, pass --allow-remote-host "
        f"{host}", addresses,
    )  # fmt: skip


def decision(
    backend: Backend, ok: bool, rule: str, message: str, addresses: list[str] | None = None
) -> DataUseDecision:
    host = urlparse(backend.base_url).hostname if backend.base_url else None
    return DataUseDecision(
        allowed=ok,
        backend=backend.name,
        base_url=backend.base_url,
        host=host,
        addresses=addresses or [],
        rule=rule,
        message=message,
    )
