"""
Certificates for the TLS tests, made in the test: a private authority, and server
certificates it signs for ``localhost`` and ``127.0.0.1`` (good, expired, for another name),
plus a self-signed one nobody trusts.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServerCertificate:
    """
    A server's key and certificate, as PEM files.
    """

    key: str
    cert: str

    def endpoint(self, port: int, kind: str = "ssl") -> str:
        """
        A Twisted ``ssl:`` endpoint string serving this certificate on loopback ``port``.
        """
        return f"{kind}:{port}:interface=127.0.0.1:privateKey={self.key}:certKey={self.cert}"


@dataclass(frozen=True)
class Certificates:
    """
    :ivar ca: the authority's certificate (PEM), what ``--cacert`` is given.
    :ivar good: signed by ``ca`` for ``localhost`` and ``127.0.0.1``, valid now.
    :ivar expired: signed by ``ca`` for the same names, expired yesterday.
    :ivar wrongName: signed by ``ca`` for ``elsewhere.example`` only.
    :ivar untrusted: self-signed for ``localhost`` and ``127.0.0.1``.
    """

    ca: str
    good: ServerCertificate
    expired: ServerCertificate
    wrongName: ServerCertificate
    untrusted: ServerCertificate


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _keyPEM(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def makeCertificates(directory: str) -> Certificates:
    """
    Write an authority and the server certificates of :class:`Certificates` into
    ``directory``.
    """
    import ipaddress

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    caKey = ec.generate_private_key(ec.SECP256R1())
    caName = _name("journey test authority")
    caCert = (
        x509.CertificateBuilder()
        .subject_name(caName)
        .issuer_name(caName)
        .public_key(caKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + day)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(caKey.public_key()), critical=False
        )
        .sign(caKey, hashes.SHA256())
    )  # fmt: skip
    ca = _write(os.path.join(directory, "ca.pem"), caCert.public_bytes(serialization.Encoding.PEM))
    loopback: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]

    def server(
        label: str,
        names: list[x509.GeneralName],
        notBefore: datetime.datetime,
        notAfter: datetime.datetime,
        selfSigned: bool = False,
    ) -> ServerCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(label)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if selfSigned else caName)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(notBefore)
            .not_valid_after(notAfter)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        )
        if not selfSigned:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()),
                critical=False,
            )
        cert = builder.sign(key if selfSigned else caKey, hashes.SHA256())
        return ServerCertificate(
            _write(os.path.join(directory, f"{label}.key"), _keyPEM(key)),
            _write(
                os.path.join(directory, f"{label}.pem"),
                cert.public_bytes(serialization.Encoding.PEM),
            ),
        )

    return Certificates(
        ca=ca,
        good=server("good", loopback, now - day, now + day),
        expired=server("expired", loopback, now - 3 * day, now - day),
        wrongName=server("wrong", [x509.DNSName("elsewhere.example")], now - day, now + day),
        untrusted=server("untrusted", loopback, now - day, now + day, selfSigned=True),
    )
