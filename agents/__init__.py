"""Kafka-native pipeline stages: thin wiring around the logic in ``esb``; installed by the
features in ``esb.features``."""
