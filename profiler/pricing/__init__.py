"""Prices: factors and config (`Prices`) and API token prices (`ApiPricer`)."""
