from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_dbperf.conf import CACHE_OPTIONS, OPTIONS, get_config


def test_defaults_when_setting_is_absent(settings: object) -> None:
    del settings.DBPERF  # type: ignore[attr-defined]
    config = get_config()
    assert config["SAMPLE_RATE"] == 1.0
    assert config["ON_NPLUSONE"] == "log"
    assert config["CACHE"]["ALIAS"] == "default"
    assert set(config) == set(OPTIONS)


def test_user_values_are_merged_over_defaults() -> None:
    with override_settings(DBPERF={"SAMPLE_RATE": 0.25, "CACHE": {"ALIAS": "redis"}}):
        config = get_config()
        assert config["SAMPLE_RATE"] == 0.25
        assert config["NPLUSONE_THRESHOLD"] == OPTIONS["NPLUSONE_THRESHOLD"].default
        # Nested dicts are merged key by key, not replaced wholesale.
        assert config["CACHE"]["ALIAS"] == "redis"
        assert config["CACHE"]["KEY_PREFIX"] == CACHE_OPTIONS["KEY_PREFIX"].default
        assert config["CACHE"]["ENABLED"] is True


def test_override_settings_clears_the_cached_config() -> None:
    with override_settings(DBPERF={"ON_NPLUSONE": "raise"}):
        assert get_config()["ON_NPLUSONE"] == "raise"
        with override_settings(DBPERF={"ON_NPLUSONE": "warn"}):
            assert get_config()["ON_NPLUSONE"] == "warn"
        assert get_config()["ON_NPLUSONE"] == "raise"
    assert get_config()["ON_NPLUSONE"] == "log"


def test_config_is_read_only() -> None:
    config = get_config()
    with pytest.raises(TypeError):
        config["SAMPLE_RATE"] = 0.5  # type: ignore[index]
    with pytest.raises(TypeError):
        config["CACHE"]["ALIAS"] = "other"


def test_config_is_not_read_at_import_time() -> None:
    # The value is computed on first use, so a later override is honoured.
    with override_settings(DBPERF={"HEADERS": False}):
        assert get_config()["HEADERS"] is False


def test_non_dict_setting_is_a_clear_error() -> None:
    with override_settings(DBPERF=["SAMPLE_RATE", 1]), pytest.raises(ImproperlyConfigured) as err:
        get_config()
    assert "DBPERF setting must be a dict, not list" in str(err.value)


def test_every_option_is_documented_and_valid_by_default() -> None:
    from django_dbperf.checks import check_settings

    for name, option in {**OPTIONS, **CACHE_OPTIONS}.items():
        assert option.help.strip(), f"{name} has no help text"
    defaults = {name: option.default for name, option in OPTIONS.items() if option.default}
    with override_settings(DBPERF=defaults):
        assert check_settings() == []
