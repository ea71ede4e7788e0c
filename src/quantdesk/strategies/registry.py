"""The strategy registry: built-in and user strategies by name."""

from __future__ import annotations

from collections.abc import Callable

from quantdesk.errors import UserError
from quantdesk.strategies.base import Strategy

# A table of classes, filled by the `register` decorator at import time: static
# data like a plugin list, not a singleton holding state.
_STRATEGIES: dict[str, type[Strategy]] = {}


class UnknownStrategy(UserError):
    """A strategy name nobody registered."""


def register(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: make a strategy available by `name` (CLI `--strategy NAME`)."""

    def decorate(cls: type[Strategy]) -> type[Strategy]:
        existing = _STRATEGIES.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"strategy name {name!r} is taken by {existing.__qualname__}")
        cls.name = name
        _STRATEGIES[name] = cls
        return cls

    return decorate


def _load_builtins() -> None:
    import quantdesk.strategies.builtin  # noqa: F401  (registers on import)


def strategy_names() -> list[str]:
    _load_builtins()
    return sorted(_STRATEGIES)


def get_strategy(name: str) -> type[Strategy]:
    """The class registered as `name`, or a UserError listing the known names."""
    _load_builtins()
    try:
        return _STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(_STRATEGIES))
        raise UnknownStrategy(f"unknown strategy {name!r} (known: {known})") from None
