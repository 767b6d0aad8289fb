"""Aggregation and statistics of the evaluation: tables, tests, categories, hypotheses."""
