"""The Compare page's parts, one module per concern: the two sides (sides), the measure row (controls), the
heatmap and what is computed from it (heatmap), intervals and p-values in a background job (inference),
the figures (charts) and the downloads (export)."""
