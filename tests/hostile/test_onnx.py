"""The hostile onnx files (cases_onnx.py), checked as harness.check says."""
from . import cases_onnx, harness

test_hostile_file = harness.hostile_test(cases_onnx.CASES)
