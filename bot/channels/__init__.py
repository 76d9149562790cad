"""Messenger channels: one package per messenger (DESIGN principle 3)."""
