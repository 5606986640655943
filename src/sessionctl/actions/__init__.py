"""Actions on sessions (logoff, message, policy): backend-agnostic, never print."""
