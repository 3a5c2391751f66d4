"""The per-app state request handlers share, kept apart from app.py to avoid import cycles."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import cast

from flask import current_app

from connection_flask.metrics import Metrics
from connection_flask.settings import Settings
from connection_flask.store import Store
from connection_flask.validation import Validator

EXTENSION = "connection_flask"


@dataclass
class State:
    settings: Settings
    registry: Store  # where the endpoints publish and look up, whichever store that is
    metrics: Metrics
    validator: Validator  # the wire types with this app's limits
    # Set when shutdown starts: /readyz answers 503 so load balancers stop sending traffic.
    draining: threading.Event = field(default_factory=threading.Event)


def state() -> State:
    return cast(State, current_app.extensions[EXTENSION])
