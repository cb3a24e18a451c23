"""Webhook signature schemes of the survey tools (integrations.md), verified over the raw body bytes.

Every comparison is constant-time; several secrets may be active at once (rotation); schemes with a
timestamp refuse deliveries outside the tolerance (replay guard). Malformed headers never raise anything
but :class:`SignatureRejected`, which carries the HTTP status to answer with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ingest.domain.catalog import standard_secret

MAX_HEADER = 2048
#: SatisMeter, AskNicely, Retently document no signature: configure them to send this header with a secret.
TOKEN_HEADER = "x-pulse-webhook-token"  # noqa: S105 - a header name, not a secret


class SignatureRejected(Exception):
    """The delivery is not authentic (401) or its signature headers are malformed (400)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    """An authentic delivery, with the sender's delivery id when the scheme has one."""

    delivery_id: str | None = None


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise SignatureRejected(401, f"missing {name} header")
    if len(value) > MAX_HEADER:
        raise SignatureRejected(400, f"{name} header is too long")
    return value.strip()


def _mac(key: bytes, message: bytes, algorithm: Callable[[], object]) -> bytes:
    return hmac.new(key, message, algorithm).digest()  # type: ignore[arg-type]


def _any_match(candidates: Sequence[bytes], expected: Sequence[bytes]) -> bool:
    found = False
    for candidate in candidates:
        for wanted in expected:
            # No early exit: the time taken does not tell which secret or signature matched.
            found |= hmac.compare_digest(candidate, wanted)
    return found


def _prefixed(value: str, prefix: str, name: str) -> str:
    if not value.startswith(prefix):
        raise SignatureRejected(400, f"{name} must start with {prefix!r}")
    return value[len(prefix):]


def _b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureRejected(400, f"{name} is not base64") from exc


def _hex(value: str, name: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise SignatureRejected(400, f"{name} is not hex") from exc


def _check_age(sent_at: float, now: float, tolerance: int) -> None:
    if abs(now - sent_at) > tolerance:
        raise SignatureRejected(401, f"timestamp is more than {tolerance}s away from now (replayed or clock skew)")


def standard_webhooks(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float,
                      tolerance: int) -> Verified:
    """Standard Webhooks (Formbricks, Svix...): HMAC-SHA256 of ``id.timestamp.body``, base64, ``v1,`` list."""
    msg_id = _header(headers, "webhook-id")
    raw_ts = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not raw_ts.isdigit() or len(raw_ts) > 12:
        raise SignatureRejected(400, "webhook-timestamp is not a number of seconds")
    _check_age(int(raw_ts), now, tolerance)
    offered = []
    for part in signatures.split(" "):
        version, _, value = part.partition(",")
        if version == "v1" and value:
            try:
                offered.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
    if not offered:
        raise SignatureRejected(400, "webhook-signature has no v1 signature")
    message = f"{msg_id}.{raw_ts}.".encode() + body
    expected = [_mac(_standard_key(s), message, hashlib.sha256) for s in secrets]
    if not _any_match(offered, expected):
        raise SignatureRejected(401, "signature does not match")
    return Verified(delivery_id=msg_id)


def _standard_key(secret: str) -> bytes:
    key = standard_secret(secret)
    if key is None:  # refused when a source is configured, and left out of the catalog when stored before
        raise SignatureRejected(401, "the source's secret is not a Standard Webhooks secret (base64)")
    return key


def typeform(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float,
             tolerance: int) -> Verified:
    """Typeform: ``Typeform-Signature: sha256=<base64 HMAC-SHA256(body)>``."""
    value = _prefixed(_header(headers, "typeform-signature"), "sha256=", "Typeform-Signature")
    offered = _b64(value, "Typeform-Signature")
    return _body_hmac(offered, body, secrets, hashlib.sha256)


def delighted(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float,
              tolerance: int) -> Verified:
    """Delighted: ``X-Delighted-Webhook-Signature: sha256=<hex HMAC-SHA256(body)>``, keyed by the API key."""
    value = _prefixed(_header(headers, "x-delighted-webhook-signature"), "sha256=", "X-Delighted-Webhook-Signature")
    return _body_hmac(_hex(value, "X-Delighted-Webhook-Signature"), body, secrets, hashlib.sha256)


def wootric(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float,
            tolerance: int) -> Verified:
    """Wootric / InMoment: ``X-Wootric-Signature: sha1=<hex HMAC-SHA1(body)>``."""
    value = _prefixed(_header(headers, "x-wootric-signature"), "sha1=", "X-Wootric-Signature")
    return _body_hmac(_hex(value, "X-Wootric-Signature"), body, secrets, hashlib.sha1)


def zendesk(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float,
            tolerance: int) -> Verified:
    """Zendesk: base64 HMAC-SHA256 of ``timestamp + body`` (no separator), timestamp in its own header."""
    signature = _b64(_header(headers, "x-zendesk-webhook-signature"), "X-Zendesk-Webhook-Signature")
    raw_ts = _header(headers, "x-zendesk-webhook-signature-timestamp")
    _check_age(_parse_moment(raw_ts), now, tolerance)
    expected = [_mac(s.encode(), raw_ts.encode() + body, hashlib.sha256) for s in secrets]
    if not _any_match([signature], expected):
        raise SignatureRejected(401, "signature does not match")
    return Verified()


def static_token(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float,
                 tolerance: int) -> Verified:
    """Tools without signatures (SatisMeter...): a secret token in the X-Pulse-Webhook-Token header."""
    offered = _header(headers, TOKEN_HEADER).encode()
    if not _any_match([offered], [s.encode() for s in secrets]):
        raise SignatureRejected(401, "token does not match")
    return Verified()


def _body_hmac(offered: bytes, body: bytes, secrets: Sequence[str], algorithm: Callable[[], object]) -> Verified:
    expected = [_mac(s.encode(), body, algorithm) for s in secrets]
    if not _any_match([offered], expected):
        raise SignatureRejected(401, "signature does not match")
    return Verified()


def _parse_moment(value: str) -> float:
    if value.isdigit() and len(value) <= 12:
        return float(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SignatureRejected(400, "timestamp is neither epoch seconds nor ISO 8601") from exc
    if moment.tzinfo is None:
        raise SignatureRejected(400, "timestamp has no time zone")
    return moment.timestamp()


Verifier = Callable[[Mapping[str, str], bytes, Sequence[str], float, int], Verified]

VERIFIERS: dict[str, Verifier] = {
    "standard": standard_webhooks,
    "formbricks": standard_webhooks,
    "typeform": typeform,
    "delighted": delighted,
    "wootric": wootric,
    "zendesk": zendesk,
    "satismeter": static_token,
}
