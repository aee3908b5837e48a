"""What ``serve`` trusts and what it refuses: tokens, paths, URLs, webhook signatures.

- **Tokens**: read from a file (one per line, ``#`` comments), kept only as sha256 digests;
  a request's token is hashed and compared with every digest by ``hmac.compare_digest``
  (constant time, and the loop never stops early). A job's owner is its token's digest.
- **Paths** (``{"path": ...}``): resolved (``..`` and symbolic links followed) and accepted
  only inside one of the allowed folders, themselves resolved.
- **URLs** (fetches and webhooks): http or https only; the host's every address must be
  public (no loopback, private, link-local, multicast, reserved or unspecified address)
  unless private addresses are allowed; redirects are checked the same way, hop by hop.
  A download stops past a byte cap and a time cap.
- **Host names** (without tokens): a request whose ``Host`` header names neither the bound
  address nor localhost (nor an allowed name) is refused. A page of a hostile site can reach
  a server on 127.0.0.1 through a name it makes resolve to 127.0.0.1 (DNS rebinding); the
  browser then sends that name as ``Host``, so the check stops it. With tokens the page has
  no token to send, and the check is not needed.
- **Webhook signature**: ``X-Violence-Detect-Signature: t=UNIX,v1=HEX``, HEX being the
  HMAC-SHA256 of ``"UNIX." + body`` under the server's secret (Stripe's scheme: the
  timestamp lets a receiver refuse replays).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import InputError, ViolenceDetectError

SIGNATURE_HEADER = "X-Violence-Detect-Signature"
SECRET_FILE = "webhook-secret"  # DATA/webhook-secret: the HMAC key of webhook signatures (0600)
SCHEMES = ("http", "https")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")  # the names of this machine a browser sends as Host
_CHUNK = 1 << 16


class Refused(ViolenceDetectError):
    """A request asks for something the server's settings do not allow (HTTP 403)."""


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port and brackets, lower-cased
    (``[::1]:8750`` -> ``::1``, ``Localhost:8750`` -> ``localhost``)."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    name, colon, port = text.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else text


def host_allowed(header: str | None, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether a request's ``Host`` header names one of ``allowed`` (a request without one,
    which no browser sends, is let through: rebinding is a browser's attack)."""
    if header is None:
        return True
    return host_name(header) in {name.lower() for name in allowed}


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_tokens(path: Path) -> list[str]:
    """The digests of the tokens in ``path`` (one per line; blank lines and ``#`` comments skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ViolenceDetectError(f"{path}: cannot read the token file ({getattr(exc, 'strerror', None) or exc})")
    tokens = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not tokens:
        raise ViolenceDetectError(f"{path}: no token in the token file", hint="one token per line")
    short = [t for t in tokens if len(t) < 16]
    if short:
        raise ViolenceDetectError(f"{path}: a token of {len(short[0])} characters; expected at least 16")
    return [token_digest(t) for t in tokens]


def match_token(digests: list[str], header: str | None) -> str | None:
    """The owner (token digest) a ``Bearer TOKEN`` header proves, else None; constant time over the list."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    given = token_digest(token.strip())
    found = None
    for digest in digests:
        if hmac.compare_digest(given, digest):
            found = digest
    return found


def check_path(text: str, allowed: list[Path]) -> Path:
    """``text`` resolved, when it lies inside one of ``allowed`` and is a file; else :class:`Refused`."""
    if not allowed:
        raise Refused("path: reading files on the server is off (start it with --allow-path DIR)")
    if "\x00" in text:
        raise Refused("path: not a valid path")
    try:
        resolved = Path(text).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        resolved = None
    roots = [root.resolve() for root in allowed]
    if resolved is None or not any(resolved.is_relative_to(root) for root in roots):
        # the same answer for a missing file and a refused one: nothing is learnt about the disk outside
        raise Refused(f"path {text}: not a file under an allowed folder")
    if not resolved.is_file():
        raise Refused(f"path {text}: not a file under an allowed folder")
    return resolved


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def check_url(url: str, allow_private: bool, what: str = "url") -> str:
    """``url`` when it is http(s) and its host resolves to public addresses only (or
    ``allow_private``); :class:`Refused` otherwise, naming ``what``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise Refused(f"{what} {url}: not a valid URL") from None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise Refused(f"{what} {url}: expected an http:// or https:// URL")
    if allow_private:
        return url
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError) as exc:
        raise Refused(f"{what} {url}: cannot resolve {parts.hostname} ({exc})") from None
    for info in infos:
        if not _public(str(info[4][0])):
            raise Refused(
                f"{what} {url}: {parts.hostname} is a loopback, private or link-local address",
                hint="the server refuses those unless started with --allow-private-urls",
            )
    return url


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        check_url(newurl, self.allow_private)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener(allow_private: bool) -> urllib.request.OpenerDirector:
    """A urllib opener whose redirects are checked like the first URL (no proxies from the environment)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _CheckedRedirects(allow_private))


def fetch(url: str, target: Path, *, max_bytes: int, timeout: float, allow_private: bool) -> Path:
    """Download ``url`` into ``target`` (written atomically), at most ``max_bytes`` and
    ``timeout`` seconds in all; :class:`InputError` naming the URL otherwise (nothing left)."""
    from .. import atomic

    check_url(url, allow_private)
    deadline = time.monotonic() + timeout
    try:
        with opener(allow_private).open(url, timeout=min(timeout, 30.0)) as response, atomic.atomic_open(
            target, "wb"
        ) as out:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise InputError(f"{url}: {int(declared)} bytes, more than the limit of {max_bytes}")
            size = 0
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise InputError(f"{url}: more than the limit of {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise InputError(f"{url}: the download took longer than {timeout:g} s")
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise InputError(f"{url}: could not download ({reason})") from None
    return target


def load_secret(data: Path) -> bytes:
    """The webhook signing key in ``DATA/webhook-secret``, made (32 random bytes, hex, 0600) when missing."""
    path = data / SECRET_FILE
    if not path.exists():
        from .. import atomic

        with atomic.atomic_path(path) as tmp:
            tmp.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
        os.chmod(path, 0o600)
    return path.read_text(encoding="ascii").strip().encode("ascii")


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for ``body``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret, f"{stamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, tolerance: float = 300.0) -> bool:
    """Whether ``header`` signs ``body`` under ``secret`` and is at most ``tolerance`` s old (for receivers)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        stamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, stamp), header)


__all__ = [
    "SIGNATURE_HEADER",
    "Refused",
    "check_path",
    "check_url",
    "fetch",
    "load_secret",
    "match_token",
    "read_tokens",
    "sign",
    "token_digest",
    "verify",
]
