"""What a parameter is: the frozen :class:`Param` record and its one validation routine.

Apart from the definitions (``params.py``) so that the list of every task's parameters reads as a
catalogue, and so that code which only needs the type (the Processing and CLI builders) does not
depend on the catalogue. Validation lives on the record: a range, an option list or a message is
written once and used by the toolbox, ``qgis_process`` and ``python -m analog_plugin`` alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import ParameterError

UNITS = ("pixels", "metres")
DEVICES = ("auto", "cpu", "cuda")
UNIT_ALIASES = {"pixel": "pixels", "px": "pixels", "meters": "metres", "metre": "metres",
                "meter": "metres", "m": "metres"}


@dataclass(frozen=True)
class Param:
    """One parameter. ``kind`` is one of: raster, file, folder, polygons, field, number,
    integer, enum, extent, bands, string, names, output_vector, output_raster."""

    name: str
    kind: str
    label: str
    help: str
    default: Any = None
    optional: bool = False
    advanced: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False  # minimum itself not allowed (a size must be > 0)
    options: tuple[str, ...] = ()
    extension: str = ""
    parent: str = ""
    example: str = ""

    @property
    def cli_flag(self) -> str:
        """``TILE_SIZE`` -> ``--tile-size``."""
        return "--" + self.name.lower().replace("_", "-")

    @property
    def arg(self) -> str:
        """The core keyword argument: ``TILE_SIZE`` -> ``tile_size``."""
        return self.name.lower()

    def full_help(self) -> str:
        return f"{self.help} Example: {self.example}." if self.example else self.help

    def validate(self, value: Any) -> Any:
        """The checked, normalised value (the default when unset), or ParameterError saying what
        was wrong, with which value, and what to do."""
        if _unset(value):
            if self.default is None and not self.optional:
                raise ParameterError(f"{self.name} is required: {self.help}")
            return self.default
        if self.kind in ("number", "integer"):
            return self._number(value)
        if self.kind == "enum":
            text = str(value).strip().lower()
            text = UNIT_ALIASES.get(text, text) if self.options == UNITS else text
            if text not in self.options:
                raise ParameterError(
                    f"{self.name} must be one of: {', '.join(self.options)} (got {value!r})"
                )
            return text
        if self.kind == "names":
            return self._names(value)
        return value

    def _names(self, value: Any) -> tuple[str, ...]:
        """A comma-separated text (or a list) of names -> a tuple of unique, stripped names."""
        if isinstance(value, str):
            items = value.split(",")
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ParameterError(f"{self.name} must be comma-separated names (got {value!r}); "
                                 f"e.g. {self.example}")
        names = tuple(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))
        if not names:
            raise ParameterError(f"{self.name} = {value!r} names nothing; {self.help}")
        return names

    def _number(self, value: Any) -> float | int:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{self.name} must be a number (got {value!r}); {self._range_text()}"
            ) from None
        bad = not math.isfinite(x)
        bad |= self.minimum is not None and (
            x <= self.minimum if self.exclusive_min else x < self.minimum
        )
        bad |= self.maximum is not None and x > self.maximum
        bad |= self.kind == "integer" and not float(x).is_integer()
        if bad:
            raise ParameterError(f"{self.name} = {value!r} is not allowed; {self._range_text()}")
        return int(x) if self.kind == "integer" or x.is_integer() else x

    def _range_text(self) -> str:
        lo = "" if self.minimum is None else f"{self.minimum:g}"
        hi = "" if self.maximum is None else f"{self.maximum:g}"
        what = "a whole number" if self.kind == "integer" else "a number"
        rng = f" between {lo} and {hi}" if lo and hi else (
            f" {'>' if self.exclusive_min else '>='} {lo}" if lo else ""
        )
        tip = f" (e.g. {self.example})" if self.example else ""
        return f"give {what}{rng}{tip}"


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
