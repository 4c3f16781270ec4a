"""Fan-out strategies, one module each; found by name through ``fanout_core.strategy``."""
