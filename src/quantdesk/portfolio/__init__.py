"""Portfolio: positions, cash, realised and unrealised P&L, equity — derived only from fills."""

from quantdesk.portfolio.portfolio import Portfolio

__all__ = ["Portfolio"]
