"""The hostile onnx files (cases_onnx.py), checked as harness.check says."""
from . import cases_onnx, harness

test_hostile_file, test_the_canary_is_live = harness.tests_for(cases_onnx.CASES)
