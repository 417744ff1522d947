from vidprod.cli import main

# Guarded: multiprocessing's spawn re-imports the main module in its children.
if __name__ == "__main__":
    raise SystemExit(main())
