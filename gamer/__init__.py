"""The paper's generative stack: item tokenizers, the GAMER decoder, constrained beam search, training.

It builds on `protocols` (the data, the session-wise split and the queries) and plugs its models
into `baselines.registry` behind the same `Recommender` interface as every other row.
"""
