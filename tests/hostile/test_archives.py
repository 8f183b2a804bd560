"""The hostile archives files (cases_archives.py), checked as harness.check says."""
from . import cases_archives, harness

test_hostile_file, test_the_canary_is_live = harness.tests_for(cases_archives.CASES)
