"""The Faust worker: Kafka in, the core engine in the middle, Kafka and Redis out."""
