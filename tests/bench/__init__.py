"""The benchmark suite (`make bench`, `make bench-quick`, `make bench-profile`).

Not collected by pytest: no module here is named test_*. Every figure is
measured side by side with its references in the same run, on this machine,
and reported; a missed goal never fails the command.
"""
