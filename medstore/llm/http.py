"""What every HTTP exchange with a teacher obeys, whichever client speaks it.

- **No redirects.** A 3xx is an error naming its Location: a server on loopback that answers
  307 must not be able to send a credentialed packet (or an API key) to another host.
- **No proxies from the environment.** ``HTTP_PROXY``/``ALL_PROXY`` would route every request,
  packets included, through a host nobody checked; both clients are built with
  ``trust_env=False``.
- **Bounded, well-formed replies.** A body larger than the limit is refused (it would be
  stored, and quoted back in every repair prompt); bytes that are not UTF-8 are a
  ``bad_response``, retried like any other broken answer.
"""

from __future__ import annotations

from typing import Any

from medstore.llm.base import PermanentError, TransientError

DEFAULT_MAX_REPLY_BYTES = 2_000_000  # a 3,000-token answer is ~12 kB


def redirect_error(status: int, headers: Any, url: str) -> PermanentError:
    location = headers.get("location") if headers is not None else None
    return PermanentError(
        "redirect",
        f"HTTP {status} from {url} redirects to {location or '(no Location)'}: medstore never "
        "follows redirects (point --base-url at the final address)",
        status=status,
    )


def is_redirect(status: int) -> bool:
    return 300 <= status < 400


def decode_body(data: bytes, limit: int, url: str) -> str:
    """The reply as text, or the error for one too large or not UTF-8."""
    if len(data) > limit:
        raise PermanentError(
            "reply_too_large",
            f"{url}: the reply is over {limit:,} bytes (--max-reply-bytes); not stored",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TransientError(
            "bad_response", f"{url}: the reply is not valid UTF-8 (byte {exc.start})"
        ) from exc


async def read_aiohttp(response: Any, limit: int, url: str) -> str:
    """Read an aiohttp response to its end, stopping once it is past ``limit``, then decode."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return decode_body(b"".join(chunks), limit, url)


async def read_httpx(response: Any, limit: int, url: str) -> str:
    """The same for a streamed httpx response: stop reading past the limit."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return decode_body(b"".join(chunks), limit, url)


class PinnedResolver:
    """An aiohttp resolver that answers a host with the addresses a decision was made on
    (the data-use guard's), so a later lookup cannot point the connection elsewhere."""

    def __init__(self, pins: dict[str, list[str]]) -> None:
        self.pins = pins

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, Any]]:
        import socket

        addresses = self.pins.get(host)
        if addresses is None:
            raise OSError(f"{host}: not an address this run decided it may reach")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None
