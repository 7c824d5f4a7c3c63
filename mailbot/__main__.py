from mailbot.cli import main

# Guarded: the PDF sandbox's forkserver may import the main module in its children.
if __name__ == "__main__":
    raise SystemExit(main())
