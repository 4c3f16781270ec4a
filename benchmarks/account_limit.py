"""Eight SQS workers fanning out at once against the account's rate, without and with AIMD.

API Gateway allows about 10,000 posts a second per account and region (burst 5,000) and
answers 429 past it. Here the local Management API, in a process of its own, plays that
token bucket scaled to this machine (``RATE`` a second, ``BURST`` at once). A send to
everyone goes through ``sqs_batched``'s tree on a moto server queue: eight worker threads,
each with its own runtime (its own Deliverer and AsyncHttpPoster, as eight Lambda workers
would have), receive batches of 10 and run ``fanout_core.worker.process_records``; a record
reported failed is not deleted and comes back after the visibility timeout, as Lambda's
event source mapping does. Once the queue is empty the API counts, per connection, the
copies of the frame it received: a copy beyond the first is a duplicate.

``python -m benchmarks.account_limit [--connections N] [--rate R] [--burst B]`` runs it alone.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import sys
import threading
import time
import uuid
from contextlib import AbstractContextManager
from typing import Any

from benchmarks.common import LATENCY, Served, ask, bench_id, load, server

WORKERS = 8
CONCURRENCY = 64  # each worker's posts in flight, FANOUT_CONCURRENCY's default
RATE, BURST = 1_000, 500  # a tenth of AWS's account bucket: 8 workers want ~25x as much
# Seconds before a failed record comes back: the worker function's timeout in template.yaml
# (its queue's is 6x that). A batch running longer would be cut off there and redelivered
# whole; here it would come back while still running, so the longest batch is reported.
VISIBILITY_TIMEOUT = 60
GIVE_UP_SECONDS = 300.0


def serve(rate: float, burst: float, count: int) -> None:
    """The Management API with the account's bucket; answers ``stats`` and ``reset`` on stdin."""
    from fanout_core.local.management_api import LocalManagementApi

    with LocalManagementApi() as api:
        api.faults.latency = LATENCY
        api.faults.account_limit(rate, burst)
        for i in range(count):
            api.connections.open(bench_id(i))
        print(api.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                copies: collections.Counter[int] = collections.Counter()
                for i in range(count):
                    connection = api.connections.get(bench_id(i))
                    frames = collections.Counter(connection.inbox) if connection else {}
                    copies.update(frames.values())
                stats = {
                    "posts_ok": api.total("POST", 200),
                    "posts_429": api.total("POST", 429),
                    "reached": sum(copies.values()),
                    "duplicates": sum((n - 1) * k for n, k in copies.items()),
                }
                print(json.dumps(stats), flush=True)
            elif line.strip() == "reset":  # a full bucket, empty inboxes, zero counters
                for i in range(count):
                    connection = api.connections.get(bench_id(i))
                    if connection:
                        connection.inbox.clear()
                api.requests.clear()
                api.faults.account_limit(rate, burst)
                print(json.dumps("ok"), flush=True)


def limited_api(rate: float, burst: float, count: int) -> AbstractContextManager[Served]:
    """``serve`` in its own process."""
    return server("benchmarks.account_limit", "--serve", str(rate), str(burst), str(count))


class Workers:
    """``WORKERS`` threads draining one queue through ``process_records``, as Lambda would."""

    def __init__(self, config: Any, sqs: Any, queue_url: str) -> None:
        self.config = config
        self.sqs = sqs
        self.queue_url = queue_url
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.longest = 0.0  # seconds of the longest batch

    def work(self) -> None:
        from fanout_core.runtime import build_runtime
        from fanout_core.worker import process_records

        runtime = build_runtime(self.config)
        try:
            while not self.stop.is_set():
                batch = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
                if not batch:
                    continue
                records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in batch]
                started = time.perf_counter()
                response, results = process_records(
                    {"Records": records}, runtime.deliverer, runtime.tasks
                )
                seconds = time.perf_counter() - started
                failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
                done = [m for m in batch if m["MessageId"] not in failed]
                if done:
                    self.sqs.delete_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(done)
                        ],
                    )
                with self.lock:
                    self.longest = max(self.longest, seconds)
                    self.counts["records"] += len(batch)
                    self.counts["records_failed"] += len(failed)
                    for r in results:
                        self.counts["delivered"] += r.delivered
                        self.counts["retried"] += r.retried
                        self.counts["throttled"] += r.throttled
                        self.counts["failed"] += r.failed
                        self.counts["requeued"] += r.requeued
                    window = runtime.deliverer.window
                    if window is not None:
                        self.counts["window_cuts"] = max(
                            self.counts["window_cuts"], window.decreases
                        )
        except BaseException as error:
            self.errors.append(error)
        finally:
            runtime.close()

    def idle(self) -> bool:
        """No message visible, in flight or delayed."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]  # fmt: skip
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        return all(int(attributes["Attributes"].get(n, 0)) == 0 for n in names)


def run_mode(
    config: Any, sqs: Any, api: Served, connections: int, *, adaptive: bool
) -> dict[str, Any]:
    """One send to everyone through the tree; the counts once the queue is empty."""
    from fanout_core.message import Message
    from fanout_core.outgoing import outgoing
    from fanout_core.runtime import build_runtime

    ask(api, "reset")
    queue_url = sqs.create_queue(
        QueueName=f"bench-limit-{uuid.uuid4().hex[:8]}",
        Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT)},
    )["QueueUrl"]
    config = dataclasses.replace(config, queue_url=queue_url, adaptive_rate=adaptive)
    workers = Workers(config, sqs, queue_url)
    threads = [threading.Thread(target=workers.work, name=f"worker-{n}") for n in range(WORKERS)]
    started = time.perf_counter()
    sender = build_runtime(config, strategy="sqs_batched")
    try:
        sent = sender.strategy.fanout(outgoing(Message("bench", "account limit frame", None)))
    finally:
        sender.close()
    for thread in threads:
        thread.start()
    quiet = 0
    while quiet < 2 and time.perf_counter() - started < GIVE_UP_SECONDS and not workers.errors:
        time.sleep(0.25)
        quiet = quiet + 1 if workers.idle() else 0
    seconds = time.perf_counter() - started
    workers.stop.set()
    for thread in threads:
        thread.join()
    sqs.delete_queue(QueueUrl=queue_url)
    if workers.errors:
        raise workers.errors[0]
    stats = ask(api, "stats")
    counts = workers.counts
    return {
        "adaptive": adaptive,
        "connections": connections,
        "workers": WORKERS,
        "concurrency": CONCURRENCY,
        "read_tasks": sent.queue_messages,
        "delivered": counts["delivered"],
        "reached": stats["reached"],
        "missing": connections - stats["reached"],
        "duplicates": stats["duplicates"],
        "retried": counts["retried"],
        "throttled_retries": counts["throttled"],
        "answered_429": stats["posts_429"],
        "failed_posts": counts["failed"],
        "requeued": counts["requeued"],
        "records": counts["records"],
        "records_failed": counts["records_failed"],
        "window_cuts_max": counts["window_cuts"],
        "longest_batch_seconds": workers.longest,
        "seconds": seconds,
        "gave_up": seconds >= GIVE_UP_SECONDS,
    }


def measure_account_limit(
    results: dict[str, Any],
    endpoint: str | None,
    sqs_url: str,
    connections: int,
    rate: float = RATE,
    burst: float = BURST,
) -> None:
    """Rows in results["account_limit"]: the same send with adaptive off, then on."""
    import boto3

    from fanout_core.config import FanoutConfig
    from fanout_core.store import ConnectionStore
    from fanout_core.table import create_table

    sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name="us-east-1")
    with limited_api(rate, burst, connections) as api:
        config = FanoutConfig(
            table=f"bench-limit-{uuid.uuid4().hex[:6]}",
            dynamodb_endpoint=endpoint,
            management_endpoint=f"{api.url}/prod",
            sqs_endpoint=sqs_url,
            concurrency=CONCURRENCY,
            strategy="sqs_batched",
        )
        create_table(config)
        load(config, connections, room_size=100)
        try:
            for adaptive in (False, True):
                row = run_mode(config, sqs, api, connections, adaptive=adaptive)
                row.update(rate=rate, burst=burst)
                results["account_limit"].append(row)
        finally:
            ConnectionStore(config).models.item.delete_table()


def account_limit_section(results: dict[str, Any]) -> list[str]:
    """The report's lines for results["account_limit"]."""
    rows = results.get("account_limit", [])
    if not rows:
        return []
    first = rows[0]
    lines = [
        "",
        "## Eight workers against the account's rate: adaptive off and on",
        "",
        f"A send to everyone ({first['connections']:,} connections) through sqs_batched's tree "
        f"on a moto server queue; {first['workers']} worker threads (C = "
        f"{first['concurrency']} each, L = 20 ms) against the local Management API answering "
        f"429 past {first['rate']:,.0f} posts/s (burst {first['burst']:,.0f}). Retried: posts "
        "sent again by the Deliverer (429s among them); failed: posts that gave up and were "
        "requeued or failed their record; duplicates: copies of the frame a connection "
        "received beyond the first (a failed record's redelivery). A record reported failed "
        f"comes back after {VISIBILITY_TIMEOUT} s (the worker function's timeout).",
        "",
        "| adaptive | delivered | reached | missing | duplicates | retried (429) | 429 answers "
        "| failed posts | requeued | records failed | longest batch s | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {'on' if r['adaptive'] else 'off'} | {r['delivered']:,} | {r['reached']:,} "
            f"| {r['missing']:,} | {r['duplicates']:,} "
            f"| {r['retried']:,} ({r['throttled_retries']:,}) | {r['answered_429']:,} "
            f"| {r['failed_posts']:,} | {r['requeued']:,} | {r['records_failed']:,} "
            f"| {r['longest_batch_seconds']:.1f} "
            f"| {r['seconds']:.1f}{' (gave up)' if r['gave_up'] else ''} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.account_limit", description=__doc__)
    parser.add_argument(
        "--serve", nargs=3, metavar=("RATE", "BURST", "COUNT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--burst", type=float, default=BURST)
    args = parser.parse_args(argv)
    if args.serve:
        serve(float(args.serve[0]), float(args.serve[1]), int(args.serve[2]))
        return 0
    from fanout_core.local import backends

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's request log
    results: dict[str, Any] = {"account_limit": []}
    with backends.dynalite() as endpoint, backends.moto_server() as sqs_url:
        measure_account_limit(results, endpoint, sqs_url, args.connections, args.rate, args.burst)
    print("\n".join(account_limit_section(results)))
    print(json.dumps(results["account_limit"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
