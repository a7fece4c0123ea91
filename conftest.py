# The test harness lives in tests/harness.py; loading it here makes it active for every path
# pytest is given, notebooks included.
pytest_plugins = ["tests.harness"]
