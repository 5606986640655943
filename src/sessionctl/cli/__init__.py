"""Command-line front ends: thin shells over the sessionctl API."""
