"""Which version a rollback goes back to (tasks/promote.py); the alias moves
themselves, against a real MLflow store, are in tests/pipeline/test_retrain.py."""

from __future__ import annotations

import pytest

from tasks.errors import ModelError
from tasks.promote import rollback_target


def test_previous_champion_tag_wins():
    versions = {
        "1": {"promoted": "true"},
        "2": {"promoted": "true"},
        "3": {"promoted": "true", "previous_champion": "1"},
    }
    assert rollback_target(versions, "3") == "1"


def test_without_the_tag_the_highest_lower_former_champion():
    versions = {
        "1": {"promoted": "true"},
        "2": {"promoted": "false"},
        "3": {},
        "4": {"champion.set_at": "2026-01-01"},
    }
    assert rollback_target(versions, "4") == "1"  # 3 and 2 never served


def test_without_former_champions_the_highest_lower_version():
    versions = {"1": {}, "2": {}, "5": {}}
    assert rollback_target(versions, "5") == "2"


def test_a_tag_pointing_at_a_deleted_version_falls_back():
    versions = {"2": {"promoted": "true"}, "3": {"previous_champion": "1"}}
    assert rollback_target(versions, "3") == "2"


def test_nothing_to_roll_back_to():
    with pytest.raises(ModelError, match="nothing to roll back to"):
        rollback_target({"1": {"promoted": "true"}, "2": {}}, "1")
