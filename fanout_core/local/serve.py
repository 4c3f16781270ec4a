"""``fanout serve``: the WebSocket API, the Management API, DynamoDB and SQS on this machine.

The handlers read their settings from the environment, as on Lambda, so this sets the
variables a deployment would (table, endpoints, queue) for this process while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from fanout_core.config import FanoutConfig, is_loopback
from fanout_core.local.authorizer import Authorizer, load_callable
from fanout_core.local.gateway import IDLE_TIMEOUT, MAX_LIFETIME, GatewayEvent, LocalWebSocketApi
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.local.ports import claim_port
from fanout_core.local.routes import routes_from_module
from fanout_core.local.sqs_pump import SqsEventSource

# Local endpoints take any key: these stand in for a bare machine's missing ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class LocalDeployment:
    """Everything ``fanout serve`` runs, as an async context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        management_port: int = 0,
        dynamodb_port: int = 0,
        stage: str = "local",
        handlers: str = "fanout_core.handlers",
        dynamodb_endpoint: str | None = None,
        strategy: str | None = None,
        table: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_lifetime: float = MAX_LIFETIME,
        on_event: Callable[[GatewayEvent], None] | None = None,
        authorizer: str | Authorizer | None = None,
        settings: dict[str, str] | None = None,
        console: bool = False,
        console_state: dict[str, Any] | None = None,
        dev_issuer: Any = None,
        publish_credentials: dict[str, str] | None = None,
        print_metrics: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        # `--dev-auth`: a DevIssuer served on the gateway's port, and the JWT authorizer
        # checking its tokens (fanout_core.local.issuer).
        self.dev_issuer = dev_issuer
        # POST /publish on the Management API's port: SigV4 by one of these keys, if given.
        self.publish_credentials = publish_credentials
        # Each invocation's metrics documents, one line each (``fanout serve --metrics``).
        self.print_metrics = print_metrics
        self._previous_sink: Any = None
        self._sink_installed = False  # the metrics sink (console, --metrics) is this one's
        # The browser console at http://host:port/ (off: nothing is wrapped or watched).
        self.console = console
        self.console_state = dict(console_state or {})
        self.feed: Any = None  # the console's ConsoleFeed, while it runs
        self.console_key = ""  # the run's secret in the console URL (fanout_core.local.console)
        self._observer: Any = None
        # FANOUT_* variables for this run (FANOUT_POLICY, FANOUT_RATE_LIMIT, ...), set as a
        # deployment's function environment would be.
        self.settings = dict(settings or {})
        # MODULE:FUNCTION, loaded now: a typo fails before anything starts.
        self.authorizer = load_callable(authorizer) if isinstance(authorizer, str) else authorizer
        if dev_issuer is not None and self.authorizer is None:
            from fanout_core import handlers as library

            self.authorizer = library.authorizer
        self.port = port
        self.dynamodb_port = dynamodb_port  # the embedded moto server's (0: any free)
        self.stage = stage
        self.handlers_module = handlers
        self.dynamodb_endpoint = dynamodb_endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
        self.strategy = strategy
        self.table = table
        self.idle_timeout = idle_timeout
        self.max_lifetime = max_lifetime
        self.on_event = on_event
        self.management = LocalManagementApi(host=host, port=management_port)
        self.gateway: LocalWebSocketApi | None = None
        self.issuer_url: str | None = None  # the development issuer's, once it listens
        self.pump: SqsEventSource | None = None
        self.config: FanoutConfig | None = None
        self.queue_url: str | None = None
        self.moto_url: str | None = None
        self._moto: Any = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def ws_url(self) -> str:
        """Where WebSocket clients connect."""
        assert self.gateway is not None
        return self.gateway.url

    def variables(self) -> dict[str, str]:
        """The variables backend code needs to publish here, in the order they are printed.

        AWS credentials appear only for local endpoints, and only as ``local`` ones (they
        accept any key): the shell's own are never printed.
        """
        names = ["FANOUT_TABLE", "FANOUT_STRATEGY", "FANOUT_QUEUE_URL", "AWS_DEFAULT_REGION"]
        names += ["FANOUT_PRESENCE_EVENTS"]  # publishes announce leaves found on a 410
        names += ["FANOUT_HISTORY_SECONDS", "FANOUT_HISTORY_MAX"]  # publishes number, keep
        names += ["FANOUT_DEDUP_SECONDS"]  # a publish's idempotency key lasts as the handlers'
        endpoints = [
            f"AWS_ENDPOINT_URL_{s}" for s in ("DYNAMODB", "SQS", "APIGATEWAYMANAGEMENTAPI")
        ]
        assert self.config is not None
        values = {**os.environ, "FANOUT_TABLE": self.config.table}
        values["FANOUT_STRATEGY"] = self.config.strategy
        variables = {name: values[name] for name in names if values.get(name)}
        urls = {name: values[name] for name in endpoints if values.get(name)}
        if all(is_loopback(url) for url in urls.values()):
            variables.update(LOCAL_CREDENTIALS)
        return {**variables, **urls}

    def environment(self) -> str:
        """``variables()`` as ``NAME=value`` words, for an ``export`` line."""
        return " ".join(f"{name}={value}" for name, value in self.variables().items())

    @property
    def management_url(self) -> str:
        """The callback URL the handlers post to."""
        return f"{self.management.url}/{self.stage}"

    def _setenv(self, name: str, value: str) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def _start_moto(self) -> str:
        if self.moto_url is None:
            from moto.server import ThreadedMotoServer

            # Its request log would bury what the server prints.
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            # Its thread would wait forever on a port that is taken: look first.
            claim_port("dynamodb_port", "127.0.0.1", self.dynamodb_port)
            self._moto = ThreadedMotoServer(
                ip_address="127.0.0.1", port=self.dynamodb_port, verbose=False
            )
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self.moto_url = f"http://{host}:{port}"
        return self.moto_url

    def _prepare_data(self) -> None:
        from fanout_core.runtime import set_runtime
        from fanout_core.table import create_table

        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            # Local endpoints accept any key; a bare laptop has none.
            for name, value in LOCAL_CREDENTIALS.items():
                self._setenv(name, value)
        if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
            self._setenv("AWS_DEFAULT_REGION", "us-east-1")
        if self.table:
            self._setenv("FANOUT_TABLE", self.table)
        if self.strategy:
            self._setenv("FANOUT_STRATEGY", self.strategy)
        for name, value in self.settings.items():
            self._setenv(name, value)
        self._setenv("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint or self._start_moto())
        self._setenv("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", self.management_url)
        config = FanoutConfig.from_env()
        if config.strategy == "sqs_batched" and not config.queue_url:
            import boto3

            sqs_url = os.environ.get("AWS_ENDPOINT_URL_SQS") or self._start_moto()
            self._setenv("AWS_ENDPOINT_URL_SQS", sqs_url)
            client = boto3.client("sqs", endpoint_url=sqs_url, region_name=config.region)
            # Named after the table, so the `export` line is the same on every run.
            self.queue_url = client.create_queue(
                QueueName=f"{config.table}-tasks",
                Attributes={"VisibilityTimeout": "5"},
            )["QueueUrl"]
            self._setenv("FANOUT_QUEUE_URL", self.queue_url)
            config = FanoutConfig.from_env()
        create_table(config)
        self.config = config
        set_runtime(None)  # the handlers build theirs from this environment

    async def start(self) -> None:
        """Start the Management API, data, the WebSocket API and (sqs_batched) the worker."""
        claim_port("port", self.host, self.port)  # before the slower parts start
        claim_port("management_port", self.management.host, self.management.port)
        await self.management.start()
        await asyncio.to_thread(self._prepare_data)
        routes = routes_from_module(self.handlers_module)
        on_event, site = self.on_event, None
        if self.console:
            routes, on_event, site = self._start_console(routes)
        if self.dev_issuer is not None:
            site = self._issuer_site(site)
        self.gateway = LocalWebSocketApi(
            routes,
            self.management.connections,
            host=self.host,
            port=self.port,
            stage=self.stage,
            idle_timeout=self.idle_timeout,
            max_lifetime=self.max_lifetime,
            on_event=on_event,
            authorizer=self.authorizer,
            site=site,
        )
        await self.gateway.start()
        self._serve_publish()
        if self.dev_issuer is not None:
            self._sign_in_with(site)
        if self.console or self.print_metrics is not None:
            from fanout_core import metrics

            self._previous_sink = metrics.set_sink(self._metrics)
            self._sink_installed = True
        if self.queue_url is not None and self.config is not None:
            import boto3

            from fanout_core import handlers

            module = __import__(self.handlers_module, fromlist=["sqs_worker"])
            worker = getattr(module, "sqs_worker", handlers.sqs_worker)
            if self._observer is not None:
                worker = self._observer.wrap_worker(worker)
            client = boto3.client(
                "sqs", endpoint_url=self.config.sqs_endpoint, region_name=self.config.region
            )
            self.pump = SqsEventSource(client, self.queue_url, worker, region=self.config.region)
            self.pump.start()

    def _issuer_site(self, console: Any) -> Any:
        from fanout_core.local.issuer import IssuerSite

        if not is_loopback(f"http://{self.host}"):
            raise ValueError("--dev-auth serves its issuer over plain http: bind 127.0.0.1")
        return IssuerSite(self.dev_issuer, inner=console)

    def _sign_in_with(self, site: Any) -> None:
        """The authorizer's variables for the development issuer, now that its URL is known."""
        from fanout_core.local.issuer import DEV_AUDIENCE, ISSUER_PATH
        from fanout_core.signin import reset

        assert self.gateway is not None
        site.url = self.issuer_url = f"http://{self.gateway.domain_name}{ISSUER_PATH}"
        self._setenv("FANOUT_JWT_ISSUER", self.issuer_url)
        for name, value in (
            ("FANOUT_JWT_AUDIENCE", DEV_AUDIENCE),
            ("FANOUT_JWT_CONTEXT_CLAIMS", "rooms"),
        ):
            if name not in self.settings:
                self._setenv(name, value)
        reset()  # a key set cached for this URL by an earlier run is not this run's

    def mint(self, principal: str, rooms: list[str]) -> str:
        """A token of the development issuer for ``principal``, with a ``rooms`` claim."""
        from fanout_core.local.issuer import DEV_AUDIENCE

        assert self.dev_issuer is not None
        audience = os.environ.get("FANOUT_JWT_AUDIENCE", DEV_AUDIENCE).split(",")[0]
        claims = {"rooms": ",".join(rooms)} if rooms else {}
        return str(
            self.dev_issuer.mint(self.issuer_url, principal, audience=audience, claims=claims)
        )

    @property
    def publish_url(self) -> str:
        """Where ``POST /publish`` (``publish_http``, as a Function URL) is served."""
        from fanout_core.local.publish_endpoint import PATH

        return self.management.url + PATH

    def _serve_publish(self) -> None:
        from fanout_core import handlers
        from fanout_core.local.publish_endpoint import PATH, publish_route

        module = __import__(self.handlers_module, fromlist=["publish_http"])
        handler = getattr(module, "publish_http", handlers.publish_http)
        self.management.side_routes[PATH] = publish_route(handler, self.publish_credentials)

    @property
    def console_url(self) -> str:
        """Where the browser console is served: with this run's key, which it asks for."""
        assert self.gateway is not None
        return f"http://{self.gateway.domain_name}/?key={self.console_key}"

    def _start_console(self, routes: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
        """The console's routes, gateway listener and site (its modules load only here)."""
        from fanout_core.local.console.start import new_key, start_console

        self.console_key = new_key()
        routes, on_event, site, self._observer = start_console(self, routes, self.console_key)
        return routes, on_event, site

    def _metrics(self, lines: Sequence[str], invocation: Any) -> None:
        """An invocation's EMF documents: to the console, and printed with --metrics."""
        if self._observer is not None:
            self._observer.invocation_metrics(lines, invocation)
        if self.print_metrics is not None:
            for line in lines:
                self.print_metrics(line)

    async def stop(self) -> None:
        """Stop everything and restore the environment."""
        from fanout_core.runtime import set_runtime

        if self._sink_installed:
            from fanout_core import metrics

            metrics.set_sink(self._previous_sink)
            self._sink_installed = False

        if self._observer is not None:
            await asyncio.to_thread(self._observer.stop)
            self._observer = None

        if self.gateway is not None:
            await self.gateway.stop()
        if self.pump is not None:
            await asyncio.to_thread(self.pump.stop)
        await self.management.stop()
        previous = set_runtime(None)
        if previous is not None:
            previous.close()
        if self._moto is not None:
            await asyncio.to_thread(self._moto.stop)
            self._moto = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
