"""Reading a request body: within the size limit, decompressed when it came compressed.

Clinics on Buton upload large Bundles over slow links; they may send them with
``Content-Encoding: gzip`` (or ``deflate``). The limit (``FHIRHUB_MAX_BODY_BYTES``) holds for
the bytes received and for the bytes they expand to, so a small compressed body cannot expand
into a huge one.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request

from fhirhub.errors import FhirError, bad_request

# zlib's wbits for each Content-Encoding: gzip header, zlib header.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


async def read_body(request: Request, limit: int, *, allow_empty: bool = False) -> bytes:
    """The body's bytes, decompressed; 413 past ``limit``, 415 for an unknown encoding, 400
    for a corrupt or (unless ``allow_empty``) empty body."""
    refuse_declared_oversize(request, limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", *_WBITS):
        raise FhirError.single(
            415,
            "not-supported",
            f"Content-Encoding '{encoding}' is not supported; send gzip, deflate or none",
        )
    inflate = zlib.decompressobj(_WBITS[encoding]) if encoding in _WBITS else None
    chunks: list[bytes] = []
    received = size = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            if inflate is not None:
                chunk = inflate.decompress(chunk, limit + 1 - size)
                if inflate.unconsumed_tail:  # it expands past the limit
                    raise too_large(limit)
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if inflate is not None:
            if not inflate.eof:
                raise zlib.error("truncated")
            chunks.append(inflate.flush())
    except zlib.error:
        raise bad_request(f"The body is not valid {encoding} data", code="structure") from None
    raw = b"".join(chunks)
    if not raw.strip() and not allow_empty:
        raise bad_request("The request has no body", code="required")
    return raw


def refuse_declared_oversize(request: Request, limit: int) -> None:
    """413 before reading, when the request says its body is larger than ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


def too_large(limit: int) -> FhirError:
    return FhirError.single(413, "too-costly", f"The body is larger than {limit} bytes")
