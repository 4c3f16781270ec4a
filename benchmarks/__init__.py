"""Benchmarks: scan against query on cost, time and scale; delivery throughput; memory; cold start.

Run by ``make bench`` (``make bench-quick`` for a smoke run), never by ``make test``.
"""
