"""Real services for the tests, each started on a free 127.0.0.1 port.

Under CI=true a missing service binary is a test failure, never a skip.
"""
