"""The gRPC channel of a client: plaintext or TLS (optionally with a client certificate,
for servers that require mutual TLS), and a bearer token sent with every call."""

from __future__ import annotations

import collections
import os
from typing import Any, List, Optional, Tuple, Union

import grpc

PemSource = Union[bytes, str, "os.PathLike[str]", None]

#: The variable a token is read from when none is given.
TOKEN_ENV = "AFFECTD_TOKEN"


def _pem(value: PemSource, name: str) -> Optional[bytes]:
    """PEM bytes, or the contents of the file a path names."""
    if value is None or isinstance(value, bytes):
        return value
    try:
        with open(value, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{name}: cannot read {os.fspath(value)!r}: {e.strerror}") from None


def token_from(token: Optional[str]) -> Optional[str]:
    """The token given, else $AFFECTD_TOKEN, else None."""
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is not None and (not token.strip() or any(c in token for c in "\r\n")):
        raise ValueError("token: empty, or contains a line break")
    return token


def credentials(
    tls: bool,
    root_certificates: PemSource,
    certificate_chain: PemSource,
    private_key: PemSource,
) -> Optional[grpc.ChannelCredentials]:
    """TLS credentials, or None for plaintext."""
    if not tls and root_certificates is None and certificate_chain is None:
        if private_key is not None:
            raise ValueError("private_key: given without certificate_chain")
        return None
    if (certificate_chain is None) != (private_key is None):
        raise ValueError("certificate_chain and private_key: give both (mutual TLS) or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(root_certificates, "root_certificates"),
        private_key=_pem(private_key, "private_key"),
        certificate_chain=_pem(certificate_chain, "certificate_chain"),
    )


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


def _with_token(details: Any, token: str) -> _CallDetails:
    metadata = list(details.metadata or []) + [("authorization", f"Bearer {token}")]
    return _CallDetails(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


class TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to every call. Metadata rather than call
    credentials: gRPC sends call credentials only over TLS, and a token on a loopback
    plaintext server is legitimate."""

    def __init__(self, token: str):
        self._token = token

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(_with_token(details, self._token), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(_with_token(details, self._token), request)

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(_with_token(details, self._token), requests)

    def intercept_stream_stream(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(_with_token(details, self._token), requests)


def open_channel(
    address: str,
    options: List[Tuple[str, int]],
    token: Optional[str],
    creds: Optional[grpc.ChannelCredentials],
) -> grpc.Channel:
    channel = grpc.secure_channel(address, creds, options=options) if creds else grpc.insecure_channel(address, options=options)
    if token is not None:
        channel = grpc.intercept_channel(channel, TokenInterceptor(token))
    return channel


def _aio_details(details: Any, token: str) -> Any:
    metadata = list(details.metadata or []) + [("authorization", f"Bearer {token}")]
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*metadata),
        details.credentials,
        details.wait_for_ready,
    )


class _AioUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str):
        self._token = token

    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(_aio_details(details, self._token), request)


class _AioUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str):
        self._token = token

    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(_aio_details(details, self._token), request)


class _AioStreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, token: str):
        self._token = token

    async def intercept_stream_stream(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return await continuation(_aio_details(details, self._token), requests)


def open_aio_channel(
    address: str,
    options: List[Tuple[str, int]],
    token: Optional[str],
    creds: Optional[grpc.ChannelCredentials],
) -> grpc.aio.Channel:
    interceptors = (
        [_AioUnaryUnary(token), _AioUnaryStream(token), _AioStreamStream(token)] if token is not None else None
    )
    if creds:
        return grpc.aio.secure_channel(address, creds, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
