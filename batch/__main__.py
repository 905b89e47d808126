"""`python -m batch`: the same command as `nameorigin-enrich`."""

from batch.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
