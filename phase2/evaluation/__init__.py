"""The evaluator and the statistics: retrieval metrics per query, and the decision rules (intervals, equivalence,
pooling) every verdict rests on."""
