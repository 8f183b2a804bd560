"""Tests of sample_models."""
