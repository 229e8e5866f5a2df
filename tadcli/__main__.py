"""``python -m tadcli`` runs the ``tad`` command line."""

from tadcli.cli import main

if __name__ == "__main__":
    main()
