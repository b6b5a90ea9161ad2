"""`python -m plinth_serve` = the `plinth` command."""

from plinth_serve.cli import main

if __name__ == "__main__":
    main()
