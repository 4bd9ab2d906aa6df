"""The demo waits for the consumer groups it knows; they must be the ones the services run."""

from __future__ import annotations

import importlib

from credit_common.service import Runtime
from credit_common.settings import SERVICE_PORTS, Settings
from credit_demo.runner import CONSUMER_GROUPS


def test_the_demo_knows_every_consumer_group_of_every_service_and_its_topics() -> None:
    running: dict[str, tuple[str, ...]] = {}
    for name in SERVICE_PORTS:
        definition = importlib.import_module(f"services.{name}.app").definition
        for spec in Runtime(definition, Settings()).consumer_specs:  # built, not started: no I/O
            group = f"{name}.{spec.name}" if spec.name else name
            running[group] = tuple(spec.topics)
    assert {g: set(t) for g, t in CONSUMER_GROUPS.items()} == {g: set(t) for g, t in running.items()}
