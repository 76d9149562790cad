"""Static files of the browser demo page, served under /web by the emulator."""
