"""Research apart from the product: the paper's reproduction (evaluation, baselines), change
tracking against the generator's truth (tracking) and the seeds' classic segmentation
(classic). Needs the ``research`` extra; the worker and the API import none of it."""
