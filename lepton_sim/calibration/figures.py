"""The names of the efficiency figures `calibrate` fits (`--fit`), without what fits them."""
COMPUTE, MEMORY, OVERHEAD = "compute", "memory", "overhead"
FIGURES = (COMPUTE, MEMORY, OVERHEAD)
