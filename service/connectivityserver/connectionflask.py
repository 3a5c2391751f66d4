"""Compatibility: ``gunicorn connectivityserver.connectionflask:app`` (the newer module path).

Upstream's own tests set the TTL by assigning ``entry_ttl = timedelta(seconds=1)`` on this
module and then expect ``app`` to strike an entry out 1.1 s later; that keeps working here.
"""

from __future__ import annotations

import sys
import types
from dataclasses import replace
from datetime import timedelta

from connection_flask.state import EXTENSION, State
from connection_flask.wsgi import app

__all__ = ["CompatModule", "app"]


class CompatModule(types.ModuleType):
    """A module whose ``entry_ttl`` reads and writes the TTL its ``app`` uses.

    Why a property on the module's class: assigning to a module attribute goes through its
    type, so a data descriptor there sees the assignment (a module-level ``__setattr__`` is
    never called, and a plain attribute would be a value nobody reads). The other way, the app
    reading this module's attribute, would put a look-up of a compatibility module in the
    store's lookup path and teach the store about it; the setter costs nothing until somebody
    assigns. Both old module paths serve the same ``app`` (connection_flask.wsgi's), so both
    see the TTL either sets.
    """

    @property
    def entry_ttl(self) -> timedelta:
        return timedelta(seconds=_state(self).settings.entry_ttl)

    @entry_ttl.setter
    def entry_ttl(self, value: timedelta) -> None:
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
        state = _state(self)
        # Settings checks the value (ENTRY_TTL must be > 0) before the store is touched.
        settings = replace(state.settings, entry_ttl=seconds)
        if not hasattr(state.registry, "ttl"):
            raise TypeError(f"{type(state.registry).__name__} cannot change its TTL while running")
        state.registry.ttl = seconds  # read on every lookup, so it applies at once
        state.settings = settings


def _state(module: types.ModuleType) -> State:
    state: State = module.app.extensions[EXTENSION]
    return state


sys.modules[__name__].__class__ = CompatModule
