"""The fault every store may raise, whatever holds its entries."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The store cannot be reached or did not answer in time (a Redis server down, restarting
    or too slow): the request is answered 503 (errors.STORE_ERRORS), and the next one tries
    again. The message starts "store unavailable: " and names the store, never its password."""
