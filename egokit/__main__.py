import sys

from egokit.cli import main

sys.exit(main())
