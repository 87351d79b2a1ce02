"""Real-browser tests of the dashboard (Playwright with the system Chromium)."""
