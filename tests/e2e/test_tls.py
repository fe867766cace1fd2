"""HTTPS when a certificate and key are configured, with a self-signed certificate made here."""

from __future__ import annotations

import os
import ssl
import subprocess
import time

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_TOKEN
from tests.e2e.conftest import BIN, free_port
from tests.support.tls import self_signed


def test_serves_https_with_the_configured_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    port = free_port()
    env = {
        **os.environ,
        "POLICY_SERVER_PORT": str(port),
        "POLICY_SERVER_DATA_DIR": str(tmp_path / "data"),
        "POLICY_SERVER_BOOTSTRAP_TOKEN": ADMIN_TOKEN,
        "POLICY_SERVER_TLS_CERT_FILE": str(cert),
        "POLICY_SERVER_TLS_KEY_FILE": str(key),
    }
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([str(BIN), "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ready", verify=trust, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        assert httpx.get(f"{url}/v1/policies", verify=trust, headers=ADMIN, timeout=10).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).raise_for_status()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health", timeout=2)  # an unknown certificate is refused by a verifying client
    finally:
        process.terminate()
        process.wait(10)
        log.close()
