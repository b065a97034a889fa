"""A throw-away test CA with a broker and a client certificate, made offline with the openssl command line."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # CA certificate (PEM): STREAMS_KAFKA_SSL_CAFILE, and the broker's truststore for client certificates
    broker: Path  # broker key (unencrypted PKCS#8) + certificate + CA (PEM): SecureListeners.keystore
    client_cert: Path
    client_key: Path  # unencrypted
    client_key_encrypted: Path  # the same key under `key_password`
    key_password: str
    other_ca: Path  # a CA that signed nothing here: trusting only it must fail the handshake


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed:\n{proc.stderr}")


def _ca(d: Path, name: str) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=d)
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=article-streams {name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _leaf(d: Path, name: str, ext: str) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=d)
    _openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


def make_pki(d: Path) -> Pki:
    """Writes the files into `d`. The broker certificate names only DNS:localhost, so connecting to 127.0.0.1
    fails the host-name check: that is how the check-hostname setting is tested."""
    if not shutil.which("openssl"):
        raise RuntimeError("openssl is needed to make the test certificates (Debian: apt-get install openssl)")
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "broker", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    _leaf(d, "client", "extendedKeyUsage=clientAuth\n")
    password = "key-pass-4711"
    _openssl(
        "pkcs8", "-topk8", "-in", "client.key", "-out", "client-encrypted.key", "-v2", "aes-256-cbc",
        "-passout", f"pass:{password}",
        cwd=d,
    )  # fmt: skip
    broker_pem = d / "broker-keystore.pem"
    broker_pem.write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text() + (d / "ca.pem").read_text())
    return Pki(
        ca=d / "ca.pem",
        broker=broker_pem,
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        client_key_encrypted=d / "client-encrypted.key",
        key_password=password,
        other_ca=d / "other-ca.pem",
    )
