"""Venues: the `Venue` interface, the simulated exchange and (later) broker adapters."""
