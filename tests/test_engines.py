"""Engines by URL (gilbench/engine.py): the connection part of issue 12, item 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from gilbench import engine
from gilbench.errors import BackendUnavailable


def test_an_unreachable_engine_is_one_sentence(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-such.sock"
    with pytest.raises(BackendUnavailable, match=r"The Docker engine at unix://.* does not "
                       r"answer .*; check the URL and that `docker -H .* info` works"):
        engine.connect(timeout=2, url=url)
    with pytest.raises(BackendUnavailable, match=r"tcp://127.0.0.1:9 does not answer"):
        engine.connect(timeout=2, url="tcp://127.0.0.1:9")


def test_tls_comes_from_the_environment_for_tcp_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    tls = engine._tls("tcp://example:2376")
    assert not isinstance(tls, bool)
    assert tls.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert tls.verify is True and tls.ca_cert == str(tmp_path / "ca.pem")
    assert engine._tls("unix:///var/run/docker.sock") is False
    monkeypatch.delenv("DOCKER_CERT_PATH")
    monkeypatch.delenv("DOCKER_TLS_VERIFY")
    assert engine._tls("tcp://example:2375") is False
