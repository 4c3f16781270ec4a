"""Tables reused test after test: wiped after each test, and checked empty before the next.

Creating a table costs a test ~0.1 s (moto's CreateTable, and the clients the call builds);
wiping the few rows a test leaves costs milliseconds. A ``TablePool`` holds the tables of one
backend in one test process (names carry the pytest-xdist worker, and each worker starts
servers of its own, so workers never share a table). A test's n-th ``Backend.config()`` gets
the pool's n-th table; after the test every table it got is wiped, and the next test that
gets one first checks that a consistent read finds no row in it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit (dynalite refuses more, as AWS does)


def items(client: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    """Every item of ``table``, read consistently."""
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        found.extend(page["Items"])
    return found


def wipe(client: DynamoDBClient, table: str) -> None:
    """Delete every item of ``table``; raise if any is left."""
    for _ in range(5):
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in items(client, table)]
        if not keys:
            return
        for start in range(0, len(keys), BATCH_WRITE_ITEMS):
            chunk = keys[start : start + BATCH_WRITE_ITEMS]
            client.batch_write_item(
                RequestItems={table: [{"DeleteRequest": {"Key": key}} for key in chunk]}
            )
    raise AssertionError(f"table {table} is not empty after wiping: {items(client, table)}")


class TablePool:
    """The reusable tables of one backend (``endpoint`` None: moto in-process)."""

    def __init__(self, backend: str, endpoint: str | None) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.prefix = f"t-{worker}-{backend.replace('_', '-')}-"
        self.endpoint = endpoint
        self.handed: list[str] = []  # to the running test, in order
        self.existing: set[str] = set()  # created, as far as the pool knows
        self._client: DynamoDBClient | None = None

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = boto3.client(
                "dynamodb", region_name="us-east-1", endpoint_url=self.endpoint
            )
        return self._client

    def take(self) -> str:
        """The next table for the running test, empty."""
        name = f"{self.prefix}{len(self.handed)}"
        self.handed.append(name)
        if name in self.existing:
            try:
                left = self.client.scan(TableName=name, ConsistentRead=True, Limit=1)["Items"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                self.existing.discard(name)  # a test reset moto, or deleted it
            else:
                assert left == [], f"table {name} holds a row of an earlier test: {left}"
        return name

    def has(self, name: str) -> bool:
        """True if the pool's table ``name`` exists already."""
        return name in self.existing

    def created(self, name: str) -> None:
        if name.startswith(self.prefix):
            self.existing.add(name)

    def wipe(self) -> None:
        """Empty every table the running test got; the next test starts afresh."""
        handed, self.handed = self.handed, []
        for name in handed:
            try:
                wipe(self.client, name)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                self.existing.discard(name)  # never created, or deleted
            else:
                self.existing.add(name)
