"""The indicator catalogue (DESIGN.md section 5): ``load_catalogue()`` returns one row per indicator."""

from surveillance.catalogue.loader import (
    CADENCES,
    COLUMNS,
    DEFAULT_PATH,
    DERIVED_FROM,
    DOMAINS,
    TYPES,
    Z_TYPES,
    Indicator,
    load_catalogue,
    load_indicators,
    parse_catalogue,
)

__all__ = [
    "CADENCES",
    "COLUMNS",
    "DEFAULT_PATH",
    "DERIVED_FROM",
    "DOMAINS",
    "TYPES",
    "Z_TYPES",
    "Indicator",
    "load_catalogue",
    "load_indicators",
    "parse_catalogue",
]
