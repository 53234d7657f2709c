"""What trains and evaluates the model (sklearn, the generator, reports): never imported by the
worker or the API, which load only the artefact, the network and its features (``models/``)."""
