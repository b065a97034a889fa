"""article-streams: a Kafka-native pipeline that turns raw article events into clean, unique, published articles."""

__version__ = "0.1.0"
