"""``python -m tasklens worker module:attr``: see :mod:`tasklens.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
