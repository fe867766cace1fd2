"""Settings from POLICY_SERVER_* variables."""

from __future__ import annotations

import pytest

from policy_server.settings import Settings, SettingsError


def test_defaults_are_an_sqlite_file_in_the_data_directory_on_port_8181(tmp_path):
    settings = Settings.from_env({"POLICY_SERVER_DATA_DIR": str(tmp_path)})
    assert settings.port == 8181
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'policy-server.db'}"
    assert settings.should_auto_migrate


def test_environment_variables_are_read_and_converted():
    settings = Settings.from_env(
        {
            "POLICY_SERVER_HOST": "0.0.0.0",
            "POLICY_SERVER_PORT": "9000",
            "POLICY_SERVER_DATABASE_URL": "postgresql+asyncpg://u:p@db/ps",
            "POLICY_SERVER_TYPO": "x",
            "OTHER": "ignored",
        }
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert not settings.is_sqlite and not settings.should_auto_migrate
    assert settings.extra == {"POLICY_SERVER_TYPO": "x"}


def test_overrides_win_over_the_environment():
    assert Settings.from_env({"POLICY_SERVER_PORT": "9000"}, port=9100).port == 9100


@pytest.mark.parametrize(("name", "value"), [("POLICY_SERVER_PORT", "eighty"), ("POLICY_SERVER_AUTO_MIGRATE", "maybe")])
def test_bad_values_are_reported_with_the_variable_name(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
