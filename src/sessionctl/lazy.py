"""Package attributes imported on first use (so importing a package stays cheap)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_attributes(
    package: str, table: Mapping[str, str], namespace: dict[str, object]
) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``table`` maps a name to the submodule it
    is imported from on first use; the value is then kept in ``namespace`` (the package's
    globals), so later reads are plain attribute reads."""

    def __getattr__(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
