"""Pod template checksums roll the pods when their configuration changes."""

from __future__ import annotations

from chart_render import render


def _annotations(*sets: str) -> dict:
    return render(*sets).worker["spec"]["template"]["metadata"]["annotations"]


def test_rendering_is_deterministic():
    assert _annotations() == _annotations()
    assert set(_annotations()) >= {"checksum/config", "checksum/secret"}


def test_config_checksum_changes_with_a_config_value():
    assert (
        _annotations()["checksum/config"] != _annotations("config.poolMaxSize=9")["checksum/config"]
    )
    assert (
        _annotations()["checksum/config"]
        != _annotations("config.useUvloop=false")["checksum/config"]
    )


def test_config_checksum_changes_with_the_registry_files():
    one = _annotations(
        "registry.files.workflow_registry\\.yaml=workflows: []",
    )["checksum/config"]
    two = _annotations(
        "registry.files.workflow_registry\\.yaml=workflows: [{type: A}]",
    )["checksum/config"]
    assert one != two != _annotations()["checksum/config"]


def test_secret_checksum_changes_with_a_url():
    before = _annotations()["checksum/secret"]
    after = _annotations("secrets.databaseUrl=postgresql://ruvon:rotated@db:5432/ruvon")
    assert after["checksum/secret"] != before
    assert after["checksum/config"] == _annotations()["checksum/config"]


def test_unrelated_values_leave_the_checksums_alone():
    assert _annotations("metrics.serviceMonitor.enabled=true") == _annotations()


def test_flower_rolls_with_the_config_too():
    def flower_checksum(*sets: str) -> str:
        flower = render(*sets).component("Deployment", "flower")
        return flower["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert flower_checksum() != flower_checksum("config.poolMaxSize=9")
