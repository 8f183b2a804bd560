"""The hostile weights files (cases_weights.py), checked as harness.check says."""
from . import cases_weights, harness

test_hostile_file = harness.hostile_test(cases_weights.CASES)
