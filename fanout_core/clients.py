"""AWS clients the library builds itself, with botocore alone.

boto3 adds nothing a client needs here and costs about a third of a cold start's imports;
every client gets a botocore session of its own, which reads the credentials of its time.
Callers keep the client they build: one per container and endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import botocore.config


def aws_client(
    service: str,
    *,
    region: str,
    endpoint_url: str | None = None,
    config: botocore.config.Config | None = None,
    credentials: tuple[str, str] | None = None,
) -> Any:
    """A new botocore client for ``service``; ``credentials`` (key, secret) replaces the
    environment's."""
    import botocore.session

    key, secret = credentials if credentials is not None else (None, None)
    return botocore.session.get_session().create_client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        config=config,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )
