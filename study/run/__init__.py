"""The stages run, resumable: extraction, the sweep, seed growth, with a live ETA and one record of time."""
