"""A sweep: the grid planned into typed runs, searched (grid or successive halving, banks, workers, cross-validation) by the one engine."""
