"""Statistics over a layer x layer matrix: resampling (bootstrap, permutation tests), corrections for
testing many cells, sanity checks, and whether a dissimilarity is a distance."""
