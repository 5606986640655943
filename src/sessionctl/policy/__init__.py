"""Idle-session policy: TOML rules (config), decisions (engine), the daemon loop (daemon)."""
