"""TLS (mutual) and bearer tokens against a real server configured with both."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import affectd
import affectd.aio

from conftest import Server

TOKEN = "affectd_test_token_pc1"
READER = "affectd_test_token_reader"


def _certificate(subject: str, key, issuer_name, issuer_key, ca: bool, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "affectd test CA")])
    ca = _certificate("affectd test CA", ca_key, ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        "localhost",
        server_key,
        ca_name,
        ca_key,
        ca=False,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("lab-pc", client_key, ca_name, ca_key, ca=False)
    files = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "server_cert": server.public_bytes(serialization.Encoding.PEM),
        "server_key": _pem_key(server_key),
        "client_cert": client.public_bytes(serialization.Encoding.PEM),
        "client_key": _pem_key(client_key),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def secure_server(pki, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "affectd.toml"
    sha = lambda t: hashlib.sha256(t.encode()).hexdigest()  # noqa: E731
    config.write_text(
        f"""[server]
tls_cert_file = "{pki['server_cert']}"
tls_key_file = "{pki['server_key']}"
tls_client_ca_file = "{pki['ca']}"

[[auth.tokens]]
name = "pc1"
sha256 = "{sha(TOKEN)}"
roles = ["stream"]

[[auth.tokens]]
name = "reader"
sha256 = "{sha(READER)}"
roles = ["read"]
"""
    )
    s = Server({"AFFECTD_CONFIG": str(config)})
    # The certificate names localhost.
    s.address = s.address.replace("127.0.0.1", "localhost")
    yield s
    s.stop()


def _client(server, pki, **kw):
    return affectd.Client(
        server.address,
        root_certificates=pki["ca"],
        certificate_chain=pki["client_cert"],
        private_key=pki["client_key"].read_bytes(),
        timeout=30,
        **kw,
    )


def test_tokens_and_mutual_tls_reach_the_server(secure_server, pki, monkeypatch):
    monkeypatch.delenv("AFFECTD_TOKEN", raising=False)
    with _client(secure_server, pki) as anonymous:
        with pytest.raises(grpc.RpcError) as refused:
            anonymous.analyze_signals({"eda": np.ones(40)}, rates=4.0, kinds="eda")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with _client(secure_server, pki, token=TOKEN) as client:
        eeg = affectd.stream("eeg", "eeg", 256.0, labels=["F3", "F4"], units="uV")
        data = np.random.default_rng(1).normal(0, 10, (2, 512))
        with client.session(participant="tls", streams=[eeg]) as session:
            session.chunk("eeg", 0.0, data, layout="channels")
            assert session.wait_acknowledged(timeout=30)
        sid = session.session_id
        assert sid in [s.session_id for s in client.sessions()]
        # A `stream` token may not delete.
        with pytest.raises(grpc.RpcError) as denied:
            client.recordings.delete(sid)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The token from the environment; a reader lists every recording.
    monkeypatch.setenv("AFFECTD_TOKEN", READER)
    with _client(secure_server, pki) as reader:
        assert sid in [s.session_id for s in reader.sessions()]


def test_asyncio_client_with_tls_and_a_token(secure_server, pki):
    async def main():
        async with affectd.aio.Client(
            secure_server.address,
            token=TOKEN,
            root_certificates=pki["ca"],
            certificate_chain=pki["client_cert"],
            private_key=pki["client_key"],
        ) as client:
            info = await client.server_info()
            eeg = affectd.stream("eeg", "eeg", 256.0, labels=["F3"], units="uV")
            session = await client.session(participant="aio-tls", streams=[eeg])
            async with session:
                await session.chunk("eeg", 0.0, np.zeros((1, 256)), layout="channels")
                assert await session.wait_acknowledged(timeout=30)
            return info

    assert asyncio.run(main()).version


def test_without_a_client_certificate_or_without_tls_nothing_answers(secure_server, pki):
    with affectd.Client(secure_server.address, token=TOKEN, root_certificates=pki["ca"], timeout=10) as client:
        with pytest.raises(grpc.RpcError) as no_certificate:
            client.server_info()
        assert no_certificate.value.code() == grpc.StatusCode.UNAVAILABLE
    with affectd.Client(secure_server.address, token=TOKEN, timeout=10) as plain:
        with pytest.raises(grpc.RpcError) as plaintext:
            plain.server_info()
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE


def test_bad_tls_and_token_arguments_are_named():
    with pytest.raises(ValueError, match="certificate_chain and private_key"):
        affectd.Client("127.0.0.1:1", certificate_chain=b"x")
    with pytest.raises(ValueError, match="root_certificates: cannot read"):
        affectd.Client("127.0.0.1:1", root_certificates="/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="token"):
        affectd.Client("127.0.0.1:1", token="a\nb")
