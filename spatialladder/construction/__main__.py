import sys

from spatialladder.construction.cli import main

sys.exit(main())
