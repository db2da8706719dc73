"""`study`: one resumable command from a TOML spec to a report (see study.cli)."""
