"""What the Neural diversity page computes and draws (Geadah et al.; docs/theory.md §10), one module per concept:
the networks, perturbations and presets it offers, the neurons' own (n, s), the sweep of every network over the
amplitudes and its verdict on CKA, the paper's claim checked, and the charts."""
