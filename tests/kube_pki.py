"""The node cluster's certificates: one CA, the API server's serving certificate and the
client certificate it shows kubelets; written with `cryptography` (no openssl calls)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Pki:
    ca: Path
    apiserver_cert: Path
    apiserver_key: Path
    kubelet_client_cert: Path
    kubelet_client_key: Path
    service_account_key: Path
    service_account_pub: Path


def _name(common: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _issue(subject: x509.Name, key, ca_name: x509.Name, ca_key, *, ca: bool = False,
           usage: list | None = None, sans: list | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + VALID)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pki(folder: Path, node_ip: str, service_ip: str) -> Pki:
    """A fresh CA and the certificates the node cluster needs, valid for two days."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("safezone-test-cluster-ca")
    ca_cert = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)
    (folder / "ca.crt").write_bytes(_pem(ca_cert))

    server_key = ec.generate_private_key(ec.SECP256R1())
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local"]
    ips = [node_ip, service_ip, "127.0.0.1"]
    server = _issue(_name("kube-apiserver"), server_key, ca_name, ca_key,
                    usage=[ExtendedKeyUsageOID.SERVER_AUTH],
                    sans=[x509.DNSName(d) for d in dns]
                    + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips])
    (folder / "apiserver.crt").write_bytes(_pem(server))
    _write_key(server_key, folder / "apiserver.key")

    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue(_name("kube-apiserver-kubelet-client", "system:masters"), client_key,
                    ca_name, ca_key, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    (folder / "kubelet-client.crt").write_bytes(_pem(client))
    _write_key(client_key, folder / "kubelet-client.key")

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(sa_key, folder / "sa.key")
    (folder / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return Pki(folder / "ca.crt", folder / "apiserver.crt", folder / "apiserver.key",
               folder / "kubelet-client.crt", folder / "kubelet-client.key",
               folder / "sa.key", folder / "sa.pub")
