"""Kafka: topic declarations, producers, the consumer wrapper every service uses."""
