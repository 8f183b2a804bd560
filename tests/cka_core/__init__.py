"""Tests of cka_core."""
