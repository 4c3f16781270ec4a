"""The console of one ``fanout serve`` run: its feed, what it observes, its site and key."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fanout_core.local.console.feed import ConsoleFeed
from fanout_core.local.console.observe import Observer
from fanout_core.local.console.site import ConsoleSite
from fanout_core.local.gateway import GatewayEvent

if TYPE_CHECKING:
    from fanout_core.local.serve import LocalDeployment


def new_key() -> str:
    """A run's console key: what the console URL holds and the page and its socket ask for."""
    return secrets.token_urlsafe(24)


def start_console(
    deployment: LocalDeployment, routes: dict[str, Any], key: str
) -> tuple[dict[str, Any], Callable[[GatewayEvent], None], ConsoleSite, Observer]:
    """The console's routes (each reporting its invocations), gateway listener, site and
    observer, started."""
    from fanout_core.fanout import Fanout

    config = deployment.config
    assert config is not None
    deployment.feed = feed = ConsoleFeed()
    observer = Observer(feed, config)
    listener = deployment.on_event

    def on_event(event: GatewayEvent) -> None:
        observer.gateway_event(event)
        if listener is not None:
            listener(event)

    def drop(connection_id: str) -> bool:
        return deployment.gateway is not None and deployment.gateway.drop(connection_id)

    fanout = Fanout()  # the handlers' runtime: what backend code in this process uses
    site = ConsoleSite(
        feed,
        observer,
        drop=drop,
        publish=lambda *a, **k: observer.publish(fanout, *a, **k),
        mint=deployment.mint if deployment.dev_issuer is not None else None,
        key=key,
    )
    deployment.management.on_request = observer.management_request
    feed.state.update(
        deployment.console_state,
        config={
            "table": config.table,
            "strategy": config.strategy,
            "policy": config.policy,
            "history_seconds": config.history_seconds,
            "connecting_seconds": config.connecting_seconds,
            "stage": deployment.stage,
            "management_url": deployment.management_url,
            "queue_url": deployment.queue_url,
            "dev_auth": deployment.dev_issuer is not None,
        },
        routes=sorted(routes),
    )
    observer.start()
    return observer.wrap_routes(routes), on_event, site, observer
