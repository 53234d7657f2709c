import sys

from segstream.cli import main

sys.exit(main())
