"""HTTP routes of scoring, one module per resource."""
