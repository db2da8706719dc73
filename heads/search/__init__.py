"""A sweep: the grid planned, searched (grid, halving, banks, workers, cross-validation), selected on validation."""
