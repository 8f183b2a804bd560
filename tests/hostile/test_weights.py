"""The hostile weights files (cases_weights.py), checked as harness.check says."""
from . import cases_weights, harness

test_hostile_file, test_the_canary_is_live = harness.tests_for(cases_weights.CASES)
