"""Create and describe the fan-out table: keys, the audience index, TTL on ``expires_at``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from fanout_core.clients import aws_client
from fanout_core.config import FanoutConfig, local_credentials
from fanout_core.models import Models
from fanout_core.store import models_for

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TTL_ATTRIBUTE = "expires_at"


@dataclass(frozen=True)
class TableStatus:
    """The outcome of ``create_table``."""

    table: str
    created: bool  # False when the table already existed
    ttl: str  # "ENABLED", "ENABLING", or why it is off

    def describe(self) -> str:
        """One line for a terminal."""
        verb = "created" if self.created else "already exists"
        return f"table {self.table!r} {verb}; TTL on {TTL_ATTRIBUTE}: {self.ttl}"


def _client(config: FanoutConfig) -> DynamoDBClient:
    client: DynamoDBClient = aws_client(
        "dynamodb",
        region=config.region,
        endpoint_url=config.dynamodb_endpoint,
        credentials=local_credentials(config.dynamodb_endpoint),
    )
    return client


def create_table(config: FanoutConfig, *, models: Models | None = None) -> TableStatus:
    """Create the table (PAY_PER_REQUEST) and enable TTL; a no-op where both exist."""
    models = models or models_for(config)
    existed = models.item.exists()
    if not existed:
        models.item.create_table(wait=False, billing_mode="PAY_PER_REQUEST")
        _wait_until_active(models)
    return TableStatus(table=config.table, created=not existed, ttl=_ensure_ttl(config))


def _wait_until_active(models: Models) -> None:
    # PynamoDB's own wait sleeps 2 s between DescribeTable calls: a local table (dynalite,
    # moto) is ACTIVE within milliseconds, a table on AWS within seconds.
    delay = 0.02
    while models.item.describe_table().get("TableStatus") != "ACTIVE":
        time.sleep(delay)
        delay = min(2.0, delay * 2)


def _ensure_ttl(config: FanoutConfig) -> str:
    client = _client(config)
    try:
        current = client.describe_time_to_live(TableName=config.table)["TimeToLiveDescription"]
        if current.get("AttributeName") == TTL_ATTRIBUTE and current.get("TimeToLiveStatus") in (
            "ENABLED",
            "ENABLING",
        ):
            return str(current["TimeToLiveStatus"])
        client.update_time_to_live(
            TableName=config.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "UnknownOperationException":
            # dynalite has no TTL API. Reads filter expired rows anyway; `sweep` deletes them.
            return "off (this backend has no TTL API; expired rows are filtered and swept)"
        raise
    return "ENABLED"


def describe_table(config: FanoutConfig) -> dict[str, Any]:
    """Keys, indexes, billing mode, item count and TTL of the table, as plain data."""
    client = _client(config)
    table = client.describe_table(TableName=config.table)["Table"]
    ttl: dict[str, Any]
    try:
        ttl = dict(client.describe_time_to_live(TableName=config.table)["TimeToLiveDescription"])
    except ClientError:
        ttl = {"TimeToLiveStatus": "unknown (this backend has no TTL API)"}
    return {
        "table": table["TableName"],
        "status": table.get("TableStatus"),
        "billing_mode": table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
        "key_schema": {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]},
        "indexes": [
            {
                "name": index["IndexName"],
                "key_schema": {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]},
                "projection": index["Projection"],
            }
            for index in table.get("GlobalSecondaryIndexes", [])
        ],
        "item_count": table.get("ItemCount"),
        "ttl": ttl,
    }
