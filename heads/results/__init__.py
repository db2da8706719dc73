"""What a sweep's files say: runs.csv's rows, the selection on validation, the summary's statistics and power, the sweep's figures."""
