"""`python -m dlcli` runs the same entry point as the `dlcli` console script."""

from dlcli.cli import main

if __name__ == "__main__":
    main()
