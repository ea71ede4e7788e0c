"""quantdesk: an intraday algorithmic trading platform with one engine for every mode."""

__version__ = "0.1.0"
