"""Settings read from CERTSVC_* variables, with errors that name the variable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from service.config import MAX_CONFIG_FILE_BYTES, ConfigError, Settings, read_config_file
from service.encryption import Keyring


def test_defaults_match_contract() -> None:
    settings = Settings.from_env({})

    assert settings.database_url == "postgresql://127.0.0.1:5432/certsvc"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.grpc_address == "127.0.0.1:50051"
    assert settings.responder_address == "127.0.0.1:5002"
    assert settings.metrics_address == "127.0.0.1:0"
    assert settings.acme_directory_url == "https://127.0.0.1:14000/dir"
    assert settings.challenge_port == 5002
    assert settings.challenge_https_port == 443
    assert settings.caa_identities == ("letsencrypt.org",)
    assert settings.dev_insecure is False
    assert settings.master_key is None


@pytest.mark.parametrize(("environment", "words"), [
    ({"CERTSVC_CHALLENGE_PORT": "eighty"}, ["CERTSVC_CHALLENGE_PORT", "port"]),
    ({"CERTSVC_GRPC_ADDRESS": "50051"}, ["CERTSVC_GRPC_ADDRESS", "host:port"]),
    ({"CERTSVC_DEV_INSECURE": "maybe"}, ["CERTSVC_DEV_INSECURE", "boolean"]),
    ({"CERTSVC_MASTER_KEY": "not base64!"}, ["CERTSVC_MASTER_KEY", "base64"]),
    ({"CERTSVC_MASTER_KEY": base64.b64encode(b"short").decode()}, ["5 bytes", "32"]),
    ({"CERTSVC_TRUST_BUNDLE": "/nonexistent/roots.pem"}, ["CERTSVC_TRUST_BUNDLE", "no such file"]),
    ({"CERTSVC_LOG_LEVEL": "LOUD"}, ["CERTSVC_LOG_LEVEL"]),
    ({"CERTSVC_CHECK_DEADLINE_SECONDS": "-1"}, ["CERTSVC_CHECK_DEADLINE_SECONDS"]),
    ({"CERTSVC_RENEWAL_MAX_PER_RUN": "0"}, ["CERTSVC_RENEWAL_MAX_PER_RUN", "positive"]),
])
def test_bad_value_names_variable(environment: dict[str, str], words: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(environment)

    for word in words:
        assert word in str(raised.value)


def test_master_key_from_file(tmp_path: Path) -> None:
    key = bytes(range(32))
    key_file = tmp_path / "master.key"
    key_file.write_text(base64.b64encode(key).decode() + "\n")

    settings = Settings.from_env({"CERTSVC_MASTER_KEY_FILE": str(key_file)})

    assert settings.master_key == key


def test_missing_master_key_outside_dev_mode() -> None:
    with pytest.raises(ConfigError, match="CERTSVC_MASTER_KEY"):
        Keyring.from_settings(Settings.from_env({}))


def test_dev_mode_uses_development_key() -> None:
    keyring = Keyring.from_settings(Settings.from_env({"CERTSVC_DEV_INSECURE": "1"}))

    assert keyring.unseal(keyring.seal(b"secret", b"row"), b"row") == b"secret"


def test_dns_server_without_port_uses_53() -> None:
    assert Settings.from_env({"CERTSVC_DNS_SERVER": "192.0.2.53"}).dns_server == ("192.0.2.53", 53)


@pytest.mark.parametrize(("value", "expected"), [
    ("MeteorApp.com", "meteorapp.com"),
    ("meteorapp.com.", "meteorapp.com"),
    ("*.meteorapp.com", "meteorapp.com"),
    ("", ""),
])
def test_platform_domain_normal_form(value: str, expected: str) -> None:
    assert Settings.from_env({"CERTSVC_PLATFORM_DOMAIN": value}).platform_domain == expected


def test_platform_domain_invalid() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CERTSVC_PLATFORM_DOMAIN": "https://meteorapp.com/"})

    assert "CERTSVC_PLATFORM_DOMAIN" in str(raised.value)
    assert "host name only" in str(raised.value)


def test_oversized_config_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "callers.toml"
    path.write_bytes(b"#" * (MAX_CONFIG_FILE_BYTES + 1))

    with pytest.raises(ConfigError) as raised:
        read_config_file("CERTSVC_API_TOKENS_FILE", path)

    assert f"CERTSVC_API_TOKENS_FILE ({path}) is larger than {MAX_CONFIG_FILE_BYTES}" in (
        str(raised.value))
