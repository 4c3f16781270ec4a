"""What the ``fanout`` subcommands share to read their arguments."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with each option's default shown where its help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        # `is`, not `in`: 1 == True and 0 == False, and a default of 1 or 0 is shown.
        shown = not (default is None or default is argparse.SUPPRESS or isinstance(default, bool))
        if not shown or "default" in text or not action.option_strings:
            return text
        return f"{text} (default %(default)s)" if text else "default %(default)s"


class Parser(argparse.ArgumentParser):
    """Every ``fanout`` parser: defaults in its help, ``--debug``, and one-line usage errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # On every (sub)command, so it may come anywhere; SUPPRESS keeps a subcommand from
        # undoing the top level's.
        self.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="on a failure, print the traceback too",
        )

    def error(self, message: str) -> NoReturn:
        """A usage mistake: one line, exit code 2."""
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed values of ``names``, as keyword arguments of the same names."""
    return {name: getattr(args, name) for name in names}


def positive_int(raw: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def count(raw: str) -> int:
    """An argparse type: an integer of at least 0."""
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def non_negative(raw: str) -> float:
    """An argparse type: a number of at least 0."""
    value = float(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def port(raw: str) -> int:
    """An argparse type: a TCP port, 0 for any free one."""
    value = int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 (any free) to 65535, got {value}")
    return value
