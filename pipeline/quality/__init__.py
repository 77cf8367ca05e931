"""Recommendation quality on real data: protocols, baselines, cold start, tuning grid and the report."""
