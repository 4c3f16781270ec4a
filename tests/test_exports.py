"""The public names of fanout_core are exactly its __all__."""

from __future__ import annotations

import fanout_core


def test_all_is_exact_and_importable() -> None:
    public = {name for name in dir(fanout_core) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(fanout_core, name)).__name__ == "module"}
    assert set(fanout_core.__all__) == public - modules
    assert sorted(fanout_core.__all__) == fanout_core.__all__


def test_the_surface_is_what_users_need_and_no_internals() -> None:
    """Publishing, its results and configuration, the extension points, and the errors."""
    assert {
        "Fanout",
        "FanoutConfig",
        "FanoutResult",
        "DisconnectResult",
        "Member",
        "FanoutStrategy",
        "Page",
        "Target",
        "AccessRequest",
        "Decision",
        "allow",
        "deny",
        "FanoutError",
        "ConfigError",
        "PayloadTooLargeError",
    } <= set(fanout_core.__all__)
    assert not {"ConnectionStore", "Audience", "SweepResult", "Runtime"} & set(fanout_core.__all__)
    errors = [n for n in fanout_core.__all__ if n.endswith("Error")]
    assert all(issubclass(getattr(fanout_core, n), fanout_core.FanoutError) for n in errors)


def test_each_public_name_has_one_home() -> None:
    """A name is exported from the module that defines it, never through another one."""
    for name in fanout_core.__all__:
        value = getattr(fanout_core, name)
        assert value.__module__.startswith("fanout_core."), name
        home = __import__(value.__module__, fromlist=[name])
        assert getattr(home, name) is value
