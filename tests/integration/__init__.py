"""Tests against a real Kafka broker (the ``kafka_bootstrap`` session fixture)."""
