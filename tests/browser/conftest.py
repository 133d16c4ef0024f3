"""Browser tests start a real node exactly as the launcher's own test does."""

from tests.integration.test_launcher import launch  # noqa: F401  (the `launch` fixture)
