"""Analysis tools: baselines, plots, reports."""
