"""The hostile archives files (cases_archives.py), checked as harness.check says."""
from . import cases_archives, harness

test_hostile_file = harness.hostile_test(cases_archives.CASES)
test_the_canary_is_live = harness.canary_test(cases_archives.CASES)
