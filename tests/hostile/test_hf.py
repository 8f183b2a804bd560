"""The hostile hf files (cases_hf.py), checked as harness.check says."""
from . import cases_hf, harness

test_hostile_file = harness.hostile_test(cases_hf.CASES)
test_the_canary_is_live = harness.canary_test(cases_hf.CASES)
