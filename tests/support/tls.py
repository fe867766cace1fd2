"""Self-signed serving certificates for tests (openssl), for HTTPS servers and the admission webhook."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.services import missing


def self_signed(folder: Path, names: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path]:
    """A one-day certificate and its key for ``names`` (a subjectAltName list); skips without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl", "the openssl command is not installed", "apt-get install openssl")
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=policy-server",
         "-addext", f"subjectAltName={names}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
