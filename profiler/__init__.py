"""us3l profiler package."""
