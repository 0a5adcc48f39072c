"""``python -m raykafka.cli``: the same as the ``raykafka`` console script."""

from raykafka.cli import main

if __name__ == "__main__":
    main()
