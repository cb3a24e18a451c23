"""Pure domain logic of alerts (no I/O): which answers alert, and what the message says."""
