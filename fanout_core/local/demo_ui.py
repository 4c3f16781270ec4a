"""``fanout demo --ui``: the walkthrough's stages, stepped through in the browser console.

The page drives them with its own clients (real browser WebSockets): this only serves the
console and tells the page how many clients and messages the stages use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fanout_core.local.demo import DEMO_ROOM, demo_authorizer, demo_settings
from fanout_core.local.serve import LocalDeployment


def demo_deployment(
    connect: int,
    send: int,
    strategy: str | None,
    host: str = "127.0.0.1",
    port: int = 8765,
    settings: dict[str, str] | None = None,
) -> LocalDeployment:
    """``fanout serve`` with the console, told to open on the demo's stages."""
    if connect < 1 or send < 0:
        raise ValueError("--connect must be at least 1 and --send at least 0")
    policy = (settings or {}).get("FANOUT_POLICY")
    return LocalDeployment(
        host=host,
        port=port,
        strategy=strategy,
        settings=demo_settings(settings),
        # Under a policy the page's clients sign in as the terminal demo's do.
        authorizer=demo_authorizer if policy else None,
        console=True,
        console_state={
            "demo": {"connect": connect, "send": send, "room": DEMO_ROOM if policy else None}
        },
    )


async def serve_demo(deployment: LocalDeployment, announce: Callable[[str], None]) -> None:
    """Serve until cancelled, announcing where to open the stages."""
    async with deployment:
        demo = deployment.console_state["demo"]
        stages = demo["connect"] + 2 * demo["send"] + 3
        announce(f"console:        {deployment.console_url}&demo")
        announce(f"WebSocket API:  {deployment.ws_url}")
        announce(f"open the console and step through the {stages} stages (Ctrl-C to stop)")
        announce("ready")
        await asyncio.Event().wait()
