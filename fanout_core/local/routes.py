"""Which handler serves which route of the local WebSocket API."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from fanout_core import handlers

Handler = Callable[[dict[str, Any], Any], Any]

# Route key -> the handler function name, in a module shaped like fanout_core.handlers.
ROUTE_FUNCTIONS = {route: handler.__name__ for route, handler in handlers.ROUTES.items()}


def routes_from_module(module: ModuleType | str) -> dict[str, Handler]:
    """Route key -> handler, from a module with ``connect``, ``send_message``, ... functions.

    A module may define ``ROUTES`` (route key -> callable) instead; a route it lacks goes to
    its ``websocket`` function if it has one.
    """
    if isinstance(module, str):
        module = importlib.import_module(module)
    explicit = getattr(module, "ROUTES", None)
    if isinstance(explicit, Mapping):
        return dict(explicit)
    fallback = getattr(module, "websocket", None)
    routes: dict[str, Handler] = {}
    for route, name in ROUTE_FUNCTIONS.items():
        handler = getattr(module, name, None) or fallback
        if handler is not None:
            routes[route] = handler
    if "$connect" not in routes:
        raise ValueError(f"{module.__name__} has no $connect handler (`connect` or `websocket`)")
    return routes
