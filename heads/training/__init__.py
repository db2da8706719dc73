"""One run: its rows, its method built and fitted by the one loop, its epoch kept, its files written."""
