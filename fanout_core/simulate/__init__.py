"""The simulator: a fan-out at sizes this machine cannot run, on AWS's limits (``fanout simulate``).

Models only: nothing here posts, reads or imports a client, and nothing the handlers import
imports it.
"""

from fanout_core.simulate.model import DIRECT, STRATEGIES, simulate
from fanout_core.simulate.outcome import Outcome
from fanout_core.simulate.platform import Platform

__all__ = ["DIRECT", "STRATEGIES", "Outcome", "Platform", "simulate"]
