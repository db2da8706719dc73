"""Before any work: the study's stages, their sizes, the calibration on this machine and the time each stage takes."""
