"""The simulated exchange: matching on bars, ticks and quotes, with latency, slippage and fees."""

from quantdesk.venues.sim.config import FillAt, LimitFill, SimVenueConfig
from quantdesk.venues.sim.exchange import SimulatedExchange

__all__ = ["FillAt", "LimitFill", "SimVenueConfig", "SimulatedExchange"]
