"""The `kiosk` command line: main (parser and entry point), common (exit statuses and shared
arguments), classify (still pictures), live (scan, bench), cases (case, cases, sync, status,
model). Each command module only parses arguments and wires the packages together.
"""
