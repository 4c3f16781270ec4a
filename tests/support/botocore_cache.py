"""One botocore data loader for every session a test process makes.

moto's ``mock_aws()`` drops boto3's default session and PynamoDB makes a session per
connection, so each new client parsed the service model and endpoint rules again (~0.4 s
for a DynamoDB client, most of a test's setup). A loader caches what it parsed; sharing one
across sessions is what a long-lived session (a warm Lambda container) does already, and
every client is still built anew.
"""

from __future__ import annotations

import functools

import botocore.loaders
import botocore.session

_shared_loader = functools.cache(botocore.loaders.create_loader)


def share_loaders() -> None:
    """Make every new botocore session use one loader per search path."""
    botocore.session.create_loader = _shared_loader
