"""quantdesk: an intraday algorithmic trading platform with one engine for every mode."""

from pathlib import Path

from quantdesk._compiled import check_source_tree

__version__ = "0.1.0"

check_source_tree(Path(__file__).resolve().parent)
