"""Compatibility: ``gunicorn connection-service.connection-flask:app``, the original path.

Assigning ``entry_ttl`` (a ``timedelta``) here changes the TTL ``app`` uses, as upstream's
tests expect; how is explained in connectivityserver.connectionflask.
"""

import sys

from connectivityserver.connectionflask import CompatModule, app

__all__ = ["app"]

sys.modules[__name__].__class__ = CompatModule
