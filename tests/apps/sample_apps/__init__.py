"""Apps for storekeeper's tests and benchmarks."""
