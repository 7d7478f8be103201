"""`python -m dlcli` runs the same entry point as the `dlcli` console script."""

from dlcli.cli import console_main

if __name__ == "__main__":
    console_main()
