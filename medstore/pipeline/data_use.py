"""The data-use guard for credentialed sources (MIMIC-IV under the PhysioNet agreement).

Records of a credentialed source may only go to a backend that stays on this machine (the
embedded model, or a server on loopback/localhost) unless the user names the remote host
explicitly. The decision is taken before any call, from the URL alone: no DNS lookup, so a name
that merely resolves to a local address does not count as local.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlparse

from medstore.llm import Backend, BackendUnavailable, is_loopback_url
from medstore.warehouse.events import DataUseDecision


class DataUseRefused(BackendUnavailable):
    """A credentialed source would go to a remote host the user did not allow: one line."""


def decide_data_use(backend: Backend, allowed_hosts: Iterable[str] = ()) -> DataUseDecision:
    """Allow the embedded model and loopback servers; a remote host only when named."""
    host = urlparse(backend.base_url).hostname if backend.base_url else None
    allowed = {name.strip().lower().rstrip(".") for name in allowed_hosts if name.strip()}

    def decision(ok: bool, rule: str, message: str) -> DataUseDecision:
        return DataUseDecision(
            allowed=ok,
            backend=backend.name,
            base_url=backend.base_url,
            host=host,
            rule=rule,
            message=message,
        )

    if backend.base_url is None:
        return decision(True, "embedded", f"{backend.name}: embedded model, nothing leaves")
    if is_loopback_url(backend.base_url) or (host or "").endswith(".localhost"):
        return decision(True, "loopback", f"{host} is on this machine")
    if host and host.lower() in allowed:
        return decision(
            True, "allowed_remote_host", f"{host} named by --allow-remote-host (user's decision)"
        )
    return decision(
        False,
        "refused_remote_host",
        f"refusing to send credentialed data to {host or backend.base_url}: only the embedded "
        "model or a server on localhost may receive it; if this host retains nothing and your "
        f"data use agreement allows it, pass --allow-remote-host {host}",
    )
