from pathlib import Path

import pytest

from vidprod.cli import main
from vidprod.config import ConfigError, Settings


def test_defaults_run_locally():
    settings = Settings.from_env({})
    assert settings.data_dir == Path("data")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.segment_seconds == 60
    assert settings.max_upload_mb == 2048
    assert settings.database_path == Path("data/vidprod.db")
    assert settings.queue_path == Path("data/queue.db")


def test_values_come_from_env():
    settings = Settings.from_env(
        {"VIDPROD_DATA_DIR": "/srv/x", "VIDPROD_SEGMENT_SECONDS": "45", "VIDPROD_PORT": "9000"}
    )
    assert settings.data_dir == Path("/srv/x")
    assert settings.segment_seconds == 45
    assert settings.port == 9000


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("VIDPROD_SEGMENT_SECONDS", "sixty", "whole number"),
        ("VIDPROD_SEGMENT_SECONDS", "0", "positive"),
        ("VIDPROD_MAX_UPLOAD_MB", "-5", "positive"),
        ("VIDPROD_PORT", "70000", "port"),
        ("VIDPROD_ADMIN_TOKEN", "short", "16 characters"),
        ("VIDPROD_LOG_LEVEL", "loud", "DEBUG"),
    ],
)
def test_invalid_value_names_the_variable(name, value, words):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value})
    assert name in str(error.value)
    assert words in str(error.value)


def test_cli_refuses_to_start_with_bad_setting(monkeypatch, capsys):
    monkeypatch.setenv("VIDPROD_SEGMENT_SECONDS", "abc")
    assert main(["migrate"]) == 2
    assert "VIDPROD_SEGMENT_SECONDS='abc' is invalid" in capsys.readouterr().err
