"""The web console: the police inbox, outreach and statistics in a browser (`/console`)."""
