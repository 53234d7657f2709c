import sys

from segstream.cli import main

if __name__ == "__main__":  # the core's child process (spawn) imports this module again
    sys.exit(main())
