"""Entry point of the benchmarks: python bench/run.py --help (make bench runs it)."""

from compare.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
