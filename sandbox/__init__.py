"""Offline Telegram Bot API emulator: run the real bot against it in tests and demos."""
