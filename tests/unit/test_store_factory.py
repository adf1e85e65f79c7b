"""One rule for the stores and coordinators of every process kind (fleet.factory)."""

from __future__ import annotations

import pytest

from ruvon_workers.definitions import load_registry
from ruvon_workers.fleet.factory import build_coordinator, build_store, pool_sizes, store_role
from ruvon_workers.fleet.settings import FleetSettings
from ruvon_workers.persistence.postgres import (
    BlockingPostgresPersistenceProvider,
    PostgresPersistenceProvider,
)

from ..helpers import FLEET_REGISTRY

URL = "postgresql://x@127.0.0.1/db"


@pytest.fixture
def no_pool_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTGRES_POOL_MIN_SIZE", raising=False)
    monkeypatch.delenv("POSTGRES_POOL_MAX_SIZE", raising=False)


@pytest.mark.usefixtures("no_pool_env")
@pytest.mark.parametrize(("role", "driver", "sizes"), [
    ("step", BlockingPostgresPersistenceProvider, (1, 4)),
    ("threads", PostgresPersistenceProvider, (1, 50)),
    ("client", PostgresPersistenceProvider, (1, 50)),
    ("background", PostgresPersistenceProvider, (1, 2)),
])
def test_each_role_has_its_driver_and_pool(role, driver, sizes) -> None:
    store = build_store(role, URL)
    assert type(store) is driver
    assert (store.pool_min_size, store.pool_max_size) == sizes == pool_sizes(role)
    assert store.db_url == URL


@pytest.mark.parametrize("role", ["step", "threads", "client", "background"])
def test_the_environment_wins_for_every_role(monkeypatch: pytest.MonkeyPatch,
                                             role) -> None:
    monkeypatch.setenv("POSTGRES_POOL_MIN_SIZE", "3")
    monkeypatch.setenv("POSTGRES_POOL_MAX_SIZE", "7")
    store = build_store(role, URL)
    assert (store.pool_min_size, store.pool_max_size) == (3, 7)


@pytest.mark.usefixtures("no_pool_env")
def test_one_bound_from_the_environment_keeps_the_other_from_the_role(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_POOL_MAX_SIZE", "9")
    assert pool_sizes("step") == (1, 9)


@pytest.mark.usefixtures("no_pool_env")
def test_the_url_defaults_to_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env@127.0.0.1/db")
    assert build_store("client").db_url == "postgresql://from-env@127.0.0.1/db"


def test_a_worker_process_store_follows_how_it_runs_steps() -> None:
    assert store_role(inline=True) == "step"
    assert store_role(inline=False) == "threads"


def test_a_coordinator_takes_the_app_registry_settings_and_dispatcher() -> None:
    from ruvon_workers.fleet.app import create_app

    registry = load_registry(FLEET_REGISTRY)
    app = create_app(registry, "memory://")
    store = build_store("client", URL)
    coordinator = build_coordinator(store, app=app)
    assert coordinator.persistence is store and coordinator.registry is registry
    assert coordinator.settings is app.ruvon_settings
    assert coordinator.dispatcher.app is app

    class Collecting:
        def step(self, *args: object, **kwargs: object) -> None: ...

    settings = FleetSettings.from_env()
    own = build_coordinator(store, registry=registry, dispatcher=Collecting(),  # type: ignore[arg-type]
                            settings=settings)
    assert own.dispatcher.__class__ is Collecting and own.settings is settings
    with pytest.raises(TypeError):
        build_coordinator(store, registry=registry)
    app.close()


def test_two_apps_in_one_process_each_keep_their_own_tasks() -> None:
    import warnings

    from ruvon_workers.fleet.app import create_app
    from ruvon_workers.fleet.tasks import START_TASK

    registry = load_registry(FLEET_REGISTRY)
    first, second = create_app(registry, "memory://"), create_app(registry, "memory://")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no task of one app is offered to the other
        tasks = [first.tasks[START_TASK], second.tasks[START_TASK]]
    assert [task.app for task in tasks] == [first, second]
    assert tasks[0].run is not tasks[1].run  # each runs on its own app's runtime
    first.close()
    second.close()
