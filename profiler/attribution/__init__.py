"""Attribution: the engine, the step tree, billing, memory shares, peaks and the `Ledger`."""
