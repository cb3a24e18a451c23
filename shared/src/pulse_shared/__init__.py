"""Pulse shared library: contracts and infrastructure used by every Pulse service.

Holds only infrastructure and contracts (event models, topic names, the Kafka consumer runner and producer,
settings, logging, metrics, health, database plumbing, test infrastructure). Business rules live in the
services.
"""
