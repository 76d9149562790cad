"""Browser tests: the demo page in headless Chromium."""
