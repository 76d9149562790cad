"""Telegram: the PTB Application (bot/app.py) and its webhook on `tinbao serve`."""
