from datetime import time

import pytest

from callcenter.config import DEFAULT_SQLITE_URL, ConfigError, load_settings


def write(tmp_path, text):
    p = tmp_path / "cc.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_any_configuration():
    s = load_settings(environ={})
    assert s.database.url == DEFAULT_SQLITE_URL
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)
    assert (s.fastagi.host, s.fastagi.port) == ("127.0.0.1", 4573)
    assert (s.certificates.min_length, s.certificates.max_length) == (6, 20)
    assert s.certificates.check_digit == "none"
    assert s.policy.oral_window_seconds == 600
    assert s.policy.day_start == time(9)


def test_file_overrides_defaults_and_environment_overrides_file(tmp_path):
    p = write(
        tmp_path, "[policy]\noral_window_seconds = 30\nwarning_seconds = 10\n[http]\nport = 9000\n"
    )
    s = load_settings(p, environ={"CALLCENTER_HTTP_PORT": "9100"})
    assert s.policy.oral_window_seconds == 30
    assert s.http.port == 9100
    assert s.source == str(p)


def test_config_path_from_environment(tmp_path):
    p = write(tmp_path, '[certificates]\ncheck_digit = "luhn"\n')
    s = load_settings(environ={"CALLCENTER_CONFIG": str(p)})
    assert s.certificates.check_digit == "luhn"


def test_database_url_from_environment():
    s = load_settings(environ={"CALLCENTER_DATABASE_URL": "postgresql+asyncpg://u@h/db"})
    assert s.database.url == "postgresql+asyncpg://u@h/db"


def test_variables_of_other_programs_are_ignored():
    s = load_settings(
        environ={
            "CALLCENTER_URL": "http://x",
            "CALLCENTER_TOKEN": "t",
            "CALLCENTER_TEST_DATABASE_URL": "sqlite://",
        }
    )
    assert s.agi.service_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ('[http]\nport = "eighty"\n', {}, "http.port"),
        (
            "",
            {"CALLCENTER_POLICY_ORAL_WINDOW_SECONDS": "ten"},
            "CALLCENTER_POLICY_ORAL_WINDOW_SECONDS",
        ),
        ("[http]\nprot = 1\n", {}, "http.prot"),
        ("[htp]\nport = 1\n", {}, "htp"),
        ('[certificates]\ncheck_digit = "crc"\n', {}, "certificates.check_digit"),
        ("[certificates]\nmin_length = 10\nmax_length = 5\n", {}, "certificates.max_length"),
        ('[policy]\nday_start = "9 am"\n', {}, "policy.day_start"),
        ('[policy]\nday_start = "19:00"\n', {}, "policy.day_end"),
        ("", {"CALLCENTER_FASTAGI_ENABLED": "maybe"}, "CALLCENTER_FASTAGI_ENABLED"),
        ("", {"CALLCENTER_HTTP_PORTT": "1"}, "CALLCENTER_HTTP_PORTT"),
        ('[calendar]\ntimezone = "Mars/Olympus"\n', {}, "calendar.timezone"),
        ("[http\n", {}, "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, env, key):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), environ=env)
    assert key in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_documented_example_loads_and_covers_every_key():
    """config/callcenter.toml documents every key with its default."""
    import dataclasses
    import tomllib

    from callcenter.config import Settings
    from tests.conftest import ROOT

    path = ROOT / "config" / "callcenter.toml"
    s = load_settings(path, environ={})
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        if f.name == "source":
            continue
        section = getattr(defaults, f.name)
        for key in (k.name for k in dataclasses.fields(section)):
            assert key in data.get(f.name, {}), f"{f.name}.{key} is not documented"
            assert getattr(getattr(s, f.name), key) == getattr(section, key), f"{f.name}.{key}"
