"""Command-line experiments: each parses flags, builds a Config and calls one library function."""
