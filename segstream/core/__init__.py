"""Transport-free segmentation core: events, windows, personality, assignment, engine.

Nothing in here imports Kafka, Faust, Redis or torch: the model and the state
store reach the engine through the small protocols in :mod:`.ports`.
"""
