import sys

from vidcat.cli import main

sys.exit(main())
