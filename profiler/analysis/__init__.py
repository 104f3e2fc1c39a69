"""Figures derived from a ledger: insights, sessions, diff and what-if."""
