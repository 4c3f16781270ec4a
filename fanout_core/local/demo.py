"""``fanout demo``: the seed's walkthrough, run for real on ``fanout serve`` in this process.

N real WebSocket clients connect, M messages are sent and delivered, the last client
drops without telling, and a closing message's fan-out meets its 410 GoneException and
deletes its rows. Every stage shows the wire, the Lambda that ran, the table and the inboxes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fanout_core import handlers
from fanout_core.local.gateway import GatewayEvent
from fanout_core.local.serve import LocalDeployment

WAIT_SECONDS = 20.0


def demo_settings(settings: dict[str, str] | None) -> dict[str, str]:
    """``settings`` with no connecting grace: the drop stage's 410 comes seconds after the
    client connected, once its $connect has answered, and deletes its rows as shown."""
    return {"FANOUT_CONNECTING_SECONDS": "0", **(settings or {})}


@dataclass
class DemoClient:
    """One real WebSocket client and what it received."""

    name: str
    websocket: ClientConnection
    connection_id: str
    inbox: list[dict[str, Any]] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    live: bool = True
    reader: asyncio.Task[None] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)  # answers to refused requests

    async def read(self) -> None:
        try:
            async for raw in self.websocket:
                frame = json.loads(raw)
                if isinstance(frame, dict) and "body" in frame:
                    self.inbox.append(frame)
                elif isinstance(frame, dict) and "error" in frame:
                    self.errors.append(frame)
        except ConnectionClosed:
            pass


DEMO_ROOM = "lobby"


def demo_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What the demo's clients sign in with under a policy: a principal, rooms: lobby."""
    name = (event.get("queryStringParameters") or {}).get("name", "anonymous")
    return {
        "principalId": f"demo-{name}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
            ],
        },
        "context": {"rooms": DEMO_ROOM},
    }


class Demo:
    """The walkthrough; ``run`` returns the process exit code."""

    def __init__(
        self,
        connect: int,
        send: int,
        *,
        strategy: str | None,
        console: Console,
        settings: dict[str, str] | None = None,
    ) -> None:
        if connect < 1 or send < 0:
            raise ValueError("--connect must be at least 1 and --send at least 0")
        self.n = connect
        self.m = send
        self.strategy = strategy
        self.console = console
        self.clients: list[DemoClient] = []
        self.step = 0
        # Under a policy, clients sign in (a principal, rooms: lobby) and talk in the lobby.
        self.policy = (settings or {}).get("FANOUT_POLICY")
        self.room = DEMO_ROOM if self.policy else None
        # N connects, a send and a delivery stage per message, then drop, 410, clean-up;
        # under a policy, a join it denies.
        self.total = connect + 2 * send + 3 + (1 if self.policy else 0)
        self.lambdas: list[str] = []
        self.posts: list[tuple[str, int]] = []
        self.deployment = LocalDeployment(
            strategy=strategy,
            on_event=self._on_event,
            settings=demo_settings(settings),
            authorizer=demo_authorizer if self.policy else None,
        )
        self.problems: list[str] = []

    def _on_event(self, event: GatewayEvent) -> None:
        if event.kind == "invoke":
            self.lambdas.append(event.route_key)

    def _on_post(self, connection_id: str, status: int) -> None:
        self.posts.append((connection_id, status))

    def _name(self, connection_id: str) -> str:
        for client in self.clients:
            if client.connection_id == connection_id:
                return client.name
        return connection_id

    # -- display ------------------------------------------------------------------------

    def _rows_table(self) -> Table:
        from fanout_core.store import ConnectionStore

        assert self.deployment.config is not None
        rows = ConnectionStore(self.deployment.config).rows()
        table = Table(
            title=f"DynamoDB table {self.deployment.config.table}: its rows",
            title_justify="left",
            expand=False,
        )
        for column in ("client", "pk", "sk", "type", "connected at", "expires at"):
            table.add_column(column, no_wrap=column in ("connected at", "expires at"))
        for row in sorted(rows, key=lambda r: (r.pk, r.sk)):
            name = self._name(row.connection_id)
            live = any(c.live and c.name == name for c in self.clients)
            connected = getattr(row, "connected_at", None)
            table.add_row(
                name if live else f"{name} (dropped)",
                row.pk,
                row.sk,
                str(row.get_attributes()["item_type"].serialize(type(row))),
                datetime.fromtimestamp(connected / 1000).strftime("%H:%M:%S") if connected else "",
                # DynamoDB's TTL deletes the row some time after this clock time.
                datetime.fromtimestamp(row.expires_at).strftime("%H:%M:%S"),
            )
        if not rows:
            table.add_row("(empty)", "", "", "", "", "")
        return table

    def _inboxes(self, title: str = "clients") -> Table:
        table = Table(title=title, title_justify="left", expand=False)
        for column in ("client", "state", "inbox"):
            table.add_column(column)
        for client in self.clients:
            messages = [f"{self._name(f['from'])}: {f['body']}" for f in client.inbox]
            state = "open" if client.live else "dropped"
            table.add_row(client.name, state, "\n".join(messages) or "(empty)")
        return table

    def _show(
        self,
        wire: str,
        lambda_line: str,
        *,
        rows: Table | None = None,
        inboxes: Table | None = None,
    ) -> None:
        self.step += 1
        self.console.rule(f"step {self.step} / {self.total}")
        wire_text = Text("// on the wire\n", style="dim")
        wire_text.append(f"▸ {wire}", style="bold cyan")
        lambda_text = Text("// the Lambda that ran\n", style="dim")
        lambda_text.append(lambda_line, style="bold magenta")
        self.console.print(
            Panel(
                Group(
                    wire_text,
                    lambda_text,
                    rows or self._rows_table(),
                    inboxes or self._inboxes(),
                )
            )
        )

    # -- waiting ------------------------------------------------------------------------

    async def _settle(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            assert self.deployment.gateway is not None
            await self.deployment.gateway.wait_idle()
            if condition():
                await self.deployment.gateway.wait_idle()
                return
            await asyncio.sleep(0.02)
        self.problems.append(f"timed out waiting for {what}")

    def _lambda_line(self, since: int) -> str:
        ran = self.lambdas[since:]
        if not ran:
            return "no Lambda ran"
        names = {route: handler.__name__ for route, handler in handlers.ROUTES.items()}
        return "route " + ", ".join(
            f"{route} → Lambda fanout_core.handlers.{names.get(route, route)}" for route in ran
        )

    # -- stages -------------------------------------------------------------------------

    async def _connect(self, index: int) -> None:
        name = chr(ord("A") + index) if index < 26 else f"C{index}"
        assert self.deployment.gateway is not None
        before = len(self.lambdas)
        opened = len(self.deployment.gateway.opened)
        query = f"?room={self.room}&name={name}" if self.room else ""
        websocket = await connect(self.deployment.ws_url + query)
        await self._settle(lambda: len(self.deployment.gateway.opened) > opened, "the socket")  # type: ignore[union-attr]
        client = DemoClient(name, websocket, self.deployment.gateway.opened[opened])
        client.reader = asyncio.create_task(client.read())
        self.clients.append(client)
        self._show(f"{name} connects to API Gateway's WebSocket API", self._lambda_line(before))

    async def _send(self, sender: DemoClient, text: str) -> list[DemoClient]:
        before = len(self.lambdas)
        self.posts.clear()
        audience = [c for c in self.clients if c.live]
        body = {"action": "sendMessage", "text": text, **({"room": self.room} if self.room else {})}
        # The posts land while the Lambda runs; this stage shows the inboxes before them.
        inboxes = self._inboxes("clients, before delivery")
        await sender.websocket.send(json.dumps(body))
        for client in audience:
            client.expected.append(text)
        strategy = self.deployment.config.strategy if self.deployment.config else ""
        await self._settle(lambda: len(self.lambdas) > before, "the sendMessage Lambda")
        self._show(
            f"{sender.name} → API Gateway: {json.dumps(body)}",
            self._lambda_line(before) + f", which fans out ({strategy})",
            inboxes=inboxes,
        )
        return audience

    def _posts_line(self) -> str:
        parts = []
        for cid, status in self.posts:
            label = {200: "200", 410: "410 GoneException"}.get(status, str(status))
            parts.append(f"{self._name(cid)} {label}")
        return "API Gateway → " + (", ".join(parts) or "(no posts)") + " (postToConnection)"

    async def _deliver(self, audience: list[DemoClient]) -> None:
        await self._settle(
            lambda: all(len(c.inbox) >= len(c.expected) for c in audience), "every inbox"
        )
        self._show(self._posts_line(), "(API Gateway delivers what the Lambda posted)")

    async def _drop(self, client: DemoClient) -> None:
        assert self.deployment.gateway is not None
        before = len(self.lambdas)
        # API Gateway's $disconnect is best effort: this one never reaches the Lambda.
        self.deployment.gateway.lose_disconnect(client.connection_id)
        transport = client.websocket.transport
        transport.abort()
        client.live = False
        connections = self.deployment.management.connections
        await self._settle(
            lambda: not connections.is_open(client.connection_id), "the dropped socket"
        )
        self._show(
            f"{client.name} ✕ drops without telling (no close frame, no $disconnect)",
            f"{self._lambda_line(before)}: its rows stay behind",
        )

    async def _closing(self, sender: DemoClient, gone: DemoClient) -> None:
        before = len(self.lambdas)
        self.posts.clear()
        audience = [c for c in self.clients if c.live]
        body = {"action": "sendMessage", "text": "anyone still there?"}
        if self.room:
            body["room"] = self.room
        for client in audience:
            client.expected.append(body["text"])
        # The clean-up happens inside this Lambda run; the next stage shows the table after.
        rows = self._rows_table()
        await sender.websocket.send(json.dumps(body))
        await self._settle(
            lambda: (
                (gone.connection_id, 410) in self.posts
                and all(len(c.inbox) >= len(c.expected) for c in audience)
            ),
            "the 410 GoneException",
        )
        self._show(
            f"{sender.name} → API Gateway: {json.dumps(body)}\n  {self._posts_line()}",
            self._lambda_line(before) + f", whose fan-out gets a 410 for {gone.name}",
            rows=rows,
        )

    async def _denied_join(self, client: DemoClient) -> None:
        before = len(self.lambdas)
        errors = len(client.errors)
        body = {"action": "joinRoom", "room": "backstage"}
        await client.websocket.send(json.dumps(body))
        await self._settle(lambda: len(self.lambdas) > before, "the joinRoom Lambda")
        deadline = time.monotonic() + 2
        while len(client.errors) == errors and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        answer = client.errors[-1] if len(client.errors) > errors else None
        said = (
            f"403 {answer['error']}: {answer['message']}"
            if answer
            else "allowed: this policy lets it join"
        )
        self._show(
            f"{client.name} → API Gateway: {json.dumps(body)}\n  ← {said}",
            self._lambda_line(before) + f": the policy ({self.policy}) is asked first",
        )

    async def run(self) -> int:
        """Run every stage; 0 if every inbox got its messages and no gone row is left."""
        async with self.deployment:
            self.deployment.management.on_post = self._on_post
            assert self.deployment.config is not None
            plural = "" if self.m == 1 else "s"
            self.console.print(
                f"[bold]fanout demo[/bold]: {self.n} clients, {self.m} message{plural}, "
                f"strategy {self.deployment.config.strategy}"
            )
            self.console.print(
                f"WebSocket API {self.deployment.ws_url}\n"
                f"Management API {self.deployment.management_url}"
            )
            for index in range(self.n):
                await self._connect(index)
            if self.policy:
                await self._denied_join(self.clients[0])
            for number in range(self.m):
                sender = self.clients[number % self.n]
                audience = await self._send(sender, f"hello from {sender.name} #{number + 1}")
                await self._deliver(audience)
            gone = self.clients[-1]
            await self._drop(gone)
            survivors = [c for c in self.clients if c.live]
            if survivors:
                await self._closing(survivors[0], gone)
            else:
                self._show("(no client left to send)", "no Lambda ran")
            from fanout_core.store import ConnectionStore

            store = ConnectionStore(self.deployment.config)
            await self._settle(
                lambda: all(r.connection_id != gone.connection_id for r in store.rows()),
                "the clean-up",
            )
            self._show(
                f"410 GoneException for {gone.name} → its connection row and memberships deleted",
                f"the fan-out that got the 410 deleted {gone.name}'s rows: no $disconnect needed",
            )
            for client in self.clients:
                got = [f["body"] for f in client.inbox]
                if got != client.expected:
                    self.problems.append(f"{client.name} got {got}, expected {client.expected}")
            if any(r.connection_id == gone.connection_id for r in store.rows()):
                self.problems.append(f"{gone.name}'s rows were left behind")
            for client in survivors:
                await client.websocket.close()
            for client in self.clients:
                if client.reader is not None:
                    await client.reader
        if self.problems:
            for problem in self.problems:
                self.console.print(f"[bold red]✗ {problem}[/bold red]")
            return 1
        self.console.print(
            f"[bold green]✓ every inbox got every message; {self.clients[-1].name}'s rows "
            "were cleaned up[/bold green]"
        )
        return 0


def run_demo(
    connect: int, send: int, strategy: str | None = None, *, settings: dict[str, str] | None = None
) -> int:
    """Run the walkthrough in a new event loop."""
    console = Console(highlight=False)
    demo = Demo(connect, send, strategy=strategy, console=console, settings=settings)
    return asyncio.run(demo.run())
