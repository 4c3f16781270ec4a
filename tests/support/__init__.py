"""Helpers the tests share: backends, events, faults, builders, the harness. Not fixtures."""
