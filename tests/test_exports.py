"""The public names of fanout_core are exactly its __all__."""

from __future__ import annotations

import fanout_core


def test_all_is_exact_and_importable() -> None:
    public = {name for name in dir(fanout_core) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(fanout_core, name)).__name__ == "module"}
    assert set(fanout_core.__all__) == public - modules
    assert sorted(fanout_core.__all__) == fanout_core.__all__
