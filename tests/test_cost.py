"""The cost model's arithmetic, checked against values computed by hand."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from fanout_core import cli, cost, sizes
from fanout_core.cost import Workload, estimate_reads, strategy_cost
from fanout_core.sizes import ItemSizes

SIZES = ItemSizes(connection=100, membership=200, connection_entry=50, membership_entry=80)


def test_number_and_item_sizes() -> None:
    assert sizes.number_size(1_700_007_500) == 5  # "17000075": 8 significant digits
    assert sizes.number_size(7) == 2
    assert sizes.number_size(0) == 2
    assert sizes.item_size({"a": "xyz", "n": 12}) == (1 + 3) + (1 + 2)
    assert sizes.item_size({"é": "é"}) == 4  # UTF-8 bytes


def test_sample_sizes_are_the_layout_items() -> None:
    items = sizes.layout_items(
        "L0SM9cOFvHcCIhw=",
        "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
        rooms=("lobby",),
        expires_at=1_700_007_500,
        connected_at_ms=1_700_000_000_250,
    )
    conn, member = items
    assert set(conn) == {
        "pk", "sk", "type", "gsi1pk", "gsi1sk", "connection_id", "endpoint", "connected_at",
        "expires_at",
    }  # fmt: skip
    assert member["gsi1pk"] == "ROOM#lobby"
    assert member["sk"] == "ROOM#lobby"
    # pk(2+21) sk(2+4) type(4+10) gsi1pk(6+6) gsi1sk(6+21) connection_id(13+16)
    # endpoint(8+55) connected_at(12+7: "170000000025") expires_at(10+5: "17000075")
    assert sizes.item_size(conn) == 23 + 6 + 14 + 12 + 27 + 29 + 63 + 19 + 15
    entry = sizes.index_entry(member)
    assert set(entry) == set(sizes.INDEX_ATTRIBUTES)


def test_page_read_units_round_up_per_page_with_a_minimum() -> None:
    assert sizes.page_read_units(0) == 0.5
    assert sizes.page_read_units(4096) == 0.5
    assert sizes.page_read_units(4097) == 1.0
    assert sizes.page_read_units(1024 * 1024) == 128.0


def test_gsi_query_reads_only_the_room() -> None:
    small = estimate_reads("gsi_query", connections=1_000, room_size=100, sizes=SIZES)
    large = estimate_reads("gsi_query", connections=100_000, room_size=100, sizes=SIZES)
    # 100 entries x 80 B = 8,000 B: one page, ceil(8000 / 4096) = 2 -> 1.0 unit
    assert small == cost.ReadEstimate(1, 100, 100, 1.0)
    assert large == small


def test_full_scan_reads_the_whole_table_page_by_page() -> None:
    # 2,000 rows averaging 150 B = 300,000 B in one page: ceil(300000 / 4096) = 74 -> 37.0
    assert estimate_reads("full_scan", connections=1_000, room_size=10, sizes=SIZES) == (
        cost.ReadEstimate(1, 2_000, 10, 37.0)
    )
    # 20,000 rows: 6,990 per 1 MB page -> two full pages (1,048,500 B: 256 x 0.5 each) and
    # 6,020 rows (903,000 B: ceil(220.5) = 221 -> 110.5)
    big = estimate_reads("full_scan", connections=10_000, room_size=10, sizes=SIZES)
    assert big == cost.ReadEstimate(3, 20_000, 10, 128.0 * 2 + 110.5)


def test_parallel_scan_rounds_per_segment() -> None:
    # 4 segments of 500 rows x 150 B = 75,000 B: ceil(18.3) = 19 -> 9.5 each
    got = estimate_reads("parallel_scan", connections=1_000, room_size=10, sizes=SIZES)
    assert got == cost.ReadEstimate(4, 2_000, 10, 38.0)


def test_everyone_reads_sixteen_shards_at_least_half_a_unit_each() -> None:
    got = estimate_reads("gsi_query", connections=160, room_size=10, everyone=True, sizes=SIZES)
    assert got == cost.ReadEstimate(16, 160, 160, 8.0)


def test_page_size_limit_multiplies_requests() -> None:
    got = estimate_reads("gsi_query", connections=1_000, room_size=100, sizes=SIZES, page_size=30)
    # pages of 30, 30, 30, 10 entries: 2,400 B (0.5) x 3 and 800 B (0.5)
    assert got == cost.ReadEstimate(4, 100, 100, 2.0)


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="no cost model"):
        estimate_reads("carrier_pigeon", connections=1, room_size=1)


def test_one_gsi_query_message_in_dollars() -> None:
    workload = Workload(connections=1_000, room_size=10, messages_per_day=1_000, sizes=SIZES)
    c = strategy_cost("gsi_query", workload)
    assert c.reads == cost.ReadEstimate(1, 10, 10, 0.5)
    assert c.apigw_messages == 11  # the sender's frame and 10 posts
    # Lambda: max(read 0.010 s, posts 10 x max(0.020 / 32, 0.0002) = 0.00625 s) x 0.25 GB
    assert c.lambda_gb_seconds == pytest.approx(0.0025)
    assert c.dollars["dynamodb"] == pytest.approx(0.5 * 0.125 / 1e6)
    assert c.dollars["apigateway"] == pytest.approx(11 * 1.00 / 1e6)
    assert c.dollars["lambda"] == pytest.approx(0.20 / 1e6 + 0.0025 * 0.0000166667)
    assert c.dollars["sqs"] == 0
    assert c.per_million == pytest.approx(0.0625 + 11 + 0.2 + 0.0416667, rel=1e-6)


def test_full_scan_costs_the_table_per_message() -> None:
    workload = Workload(connections=10_000, room_size=10, messages_per_day=1, sizes=SIZES)
    scan = strategy_cost("full_scan", workload)
    query = strategy_cost("gsi_query", workload)
    assert scan.dollars["dynamodb"] == pytest.approx(366.5 * 0.125 / 1e6)
    assert scan.dollars["dynamodb"] / query.dollars["dynamodb"] == pytest.approx(366.5 / 0.5)


def test_sqs_batched_counts_send_receive_and_delete() -> None:
    workload = Workload(connections=1_000, room_size=250, messages_per_day=1, sizes=SIZES)
    c = strategy_cost("sqs_batched", workload)
    # 250 ids -> 3 queue messages -> 1 SendMessageBatch (under 64 KB) + 1 receive + 1 delete
    assert c.sqs_requests == 3
    assert c.lambda_invocations == 2  # send_message and one worker batch
    assert c.dollars["sqs"] == pytest.approx(3 * 0.40 / 1e6)


def test_frames_over_32_kb_are_several_messages() -> None:
    workload = Workload(
        connections=100, room_size=10, messages_per_day=1, frame_bytes=40_000, sizes=SIZES
    )
    assert strategy_cost("gsi_query", workload).apigw_messages == 1 + 10 * 2


def test_connection_minutes_per_day() -> None:
    minutes, dollars = cost.connection_minutes_per_day(
        Workload(connections=1_000, room_size=1, messages_per_day=0)
    )
    assert minutes == 1_440_000
    assert dollars == pytest.approx(1.44 * 0.25)


def test_cost_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.add_cost_command(parser.add_subparsers())
    args = parser.parse_args(
        ["cost", "--connections", "10000", "--room-size", "100", "--messages-per-day", "5000"]
    )
    assert args.run(args) == 0
    out = capsys.readouterr().out
    for name in cost.STRATEGIES:
        assert f"| {name} |" in out
    args = parser.parse_args(
        ["cost", "--connections", "10", "--room-size", "5", "--messages-per-day", "2", "--json"]
    )
    assert args.run(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["strategy"] for row in data] == list(cost.STRATEGIES)
    assert data[1]["per_day"] == pytest.approx(2 * data[1]["per_million"] / 1e6)
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["cost", "--connections", "0", "--room-size", "1", "--messages-per-day", "1"]
        )


def test_a_rate_limit_costs_one_write_unit_per_send() -> None:
    plain = Workload(connections=1_000, room_size=10, messages_per_day=1, sizes=SIZES)
    limited = Workload(
        connections=1_000, room_size=10, messages_per_day=1, sizes=SIZES, rate_limit=True
    )
    before, after = strategy_cost("gsi_query", plain), strategy_cost("gsi_query", limited)
    assert (before.write_units, after.write_units) == (0.0, 1.0)
    assert after.dollars["dynamodb"] - before.dollars["dynamodb"] == pytest.approx(0.625 / 1e6)
    parser = argparse.ArgumentParser()
    cli.add_cost_command(parser.add_subparsers())
    common = ["--connections", "10", "--room-size", "5", "--messages-per-day", "2"]
    args = parser.parse_args(["cost", *common, "--rate-limit", "--json"])
    assert args.run(args) == 0


def test_history_and_keys_add_their_writes_and_a_resume_its_reads() -> None:
    counter, frame, key = sizes.history_items(200)
    # One write unit each.
    assert counter < 1024
    assert key < 1024
    assert 200 < frame < 1024
    assert sizes.history_items(5000)[1] > 5000  # the frame is stored whole
    base = Workload(connections=1000, room_size=10, messages_per_day=1, sizes=SIZES)
    assert cost.extra_write_units(base) == 0
    with_history = Workload(1000, 10, 1, sizes=SIZES, history=True)
    assert cost.extra_write_units(with_history) == 2  # the counter, the frame
    assert cost.extra_write_units(Workload(1000, 10, 1, history=True, frame_bytes=5000)) == 1 + 5
    everything = Workload(1000, 10, 1, sizes=SIZES, history=True, idempotency=True, rate_limit=True)
    assert cost.extra_write_units(everything) == 4
    gsi = strategy_cost("gsi_query", with_history)
    assert gsi.write_units == 2
    plain = strategy_cost("gsi_query", base)
    assert gsi.dollars["dynamodb"] - plain.dollars["dynamodb"] == pytest.approx(2 * 0.625 / 1e6)
    # A resume: two consistent GetItems (1 unit each), then pages of 100 frames.
    ten = cost.resume_cost(10, with_history)
    assert (ten.requests, ten.read_units, ten.posts) == (3, 2 + 1, 11)
    hundred = cost.resume_cost(100, with_history)
    assert hundred.read_units == 2 + math.ceil(100 * frame / 4096)
    assert cost.resume_cost(250, with_history).requests == 2 + 3
    # The history handler's Lambda time: 3 reads of 10 ms, then 11 posts of 20 ms one after
    # another, at 256 MB; and its invocation.
    assert ten.lambda_gb_seconds == pytest.approx((3 * 0.010 + 11 * 0.020) * 0.25)
    apigw = (1 + 11) * 1.00
    lambda_dollars = 0.20 + ten.lambda_gb_seconds * 0.0000166667 * 1e6
    assert ten.dollars * 1e6 == pytest.approx(3 * 0.125 + apigw + lambda_dollars)
    assert hundred.lambda_gb_seconds == pytest.approx((3 * 0.010 + 101 * 0.020) * 0.25)
    # With a rate limit a resume takes a token: one write, one round trip more; past 32 KB
    # posted (200 frames of 200 bytes), it is charged the rest: one write more.
    limited_workload = Workload(1000, 10, 1, sizes=SIZES, history=True, rate_limit=True)
    limited = cost.resume_cost(10, limited_workload)
    assert (limited.write_units, ten.write_units) == (1, 0)
    assert limited.lambda_gb_seconds == pytest.approx(ten.lambda_gb_seconds + 0.010 * 0.25)
    assert cost.resume_cost(100, limited_workload).write_units == 1  # 20 KB
    assert cost.resume_cost(200, limited_workload).write_units == 2  # 40 KB


def test_cost_cli_prices_history(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["cost", "--connections", "1000", "--room-size", "10", "--messages-per-day", "10"]
    assert cli.main([*args, "--history", "--idempotency"]) == 0
    out = capsys.readouterr().out
    assert "| gsi_query | 0.5 | 3.0 |" in out
    assert "| DynamoDB read requests / msg |" in out
    assert "A resume of 10 frames: 3 DynamoDB read requests, 3 read units" in out
    assert "11 posts, 0.0625 Lambda GB-s: $13.62 per million resumes." in out
    assert cli.main([*args, "--history", "--json"]) == 0
    resumes = json.loads(capsys.readouterr().out)[-1]["resumes"]
    assert [r["frames"] for r in resumes] == [10, 100]
