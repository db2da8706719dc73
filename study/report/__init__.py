"""The report: the answer, its figures and files, read from what the stages wrote."""
