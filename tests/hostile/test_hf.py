"""The hostile hf files (cases_hf.py), checked as harness.check says."""
from . import cases_hf, harness

test_hostile_file, test_the_canary_is_live = harness.tests_for(cases_hf.CASES)
