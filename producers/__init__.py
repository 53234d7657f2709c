"""Event sources: the synthetic bank with ground truth, file/data-set replays, and the Kafka producer."""
