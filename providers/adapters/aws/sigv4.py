"""AWS Signature Version 4, the small part of it a JSON POST needs.

https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html. No SDK: the house style
keeps vendor SDKs out of the runtime, and signing is four HMACs. The clock is a parameter so tests can
check the signature against AWS's published test suite and botocore.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import urllib.parse
from collections.abc import Callable

ALGORITHM = "AWS4-HMAC-SHA256"
# RFC 3986 unreserved characters: the only ones SigV4 leaves unencoded.
UNRESERVED = "-_.~"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret_key).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_uri(raw_path: str) -> str:
    """Every service but S3 encodes each segment of the path as sent once more, so a model id sent
    as `v1%3A0` signs as `v1%253A0` (what botocore does; a mismatch is SignatureDoesNotMatch)."""
    return urllib.parse.quote(raw_path or "/", safe="/" + UNRESERVED)


def canonical_query(raw_query: str) -> str:
    pairs = []
    for item in raw_query.split("&") if raw_query else ():
        name, _, value = item.partition("=")
        pairs.append((urllib.parse.quote(urllib.parse.unquote(name), safe=UNRESERVED),
                      urllib.parse.quote(urllib.parse.unquote(value), safe=UNRESERVED)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def host_of(url: urllib.parse.SplitResult) -> str:
    """The Host header an HTTP client sends: the port only when it is not the scheme's default."""
    host = (url.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(url.scheme)
    return host if url.port in (None, default) else f"{host}:{url.port}"


def sign(*, method: str, url: str, headers: dict[str, str], body: bytes, access_key: str, secret_key: str,
         region: str, service: str, session_token: str = "",
         now: Callable[[], datetime.datetime] = utcnow) -> dict[str, str]:
    """The headers to send: the given ones plus `X-Amz-Date` and `Authorization` (and with temporary
    credentials, `X-Amz-Security-Token`).

    `url` must be exactly what goes on the wire (path already percent-encoded); every given header
    is signed, together with host and x-amz-date. A session token is signed too, as botocore does
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html#temporary-security-credentials).
    """
    if session_token:
        headers = {**headers, "X-Amz-Security-Token": session_token}
    parts = urllib.parse.urlsplit(url)
    stamp = now().astimezone(datetime.UTC)
    amz_date = stamp.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed: dict[str, str] = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
    signed["host"] = host_of(parts)
    signed["x-amz-date"] = amz_date
    names = sorted(signed)
    signed_headers = ";".join(names)
    canonical_request = "\n".join([
        method.upper(),
        canonical_uri(parts.path),
        canonical_query(parts.query),
        "".join(f"{name}:{signed[name]}\n" for name in names),
        signed_headers,
        hashlib.sha256(body or b"").hexdigest(),
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    signature = hmac.new(signing_key(secret_key, date, region, service), string_to_sign.encode(),
                         hashlib.sha256).hexdigest()
    return {**headers, "X-Amz-Date": amz_date,
            "Authorization": f"{ALGORITHM} Credential={access_key}/{scope}, "
                             f"SignedHeaders={signed_headers}, Signature={signature}"}
