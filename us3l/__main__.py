import sys

from us3l.cli import main

sys.exit(main())
