"""What a sweep's files say: runs.csv's rows, the summary's statistics and power, the figures."""
