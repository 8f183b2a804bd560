import sys

from .cli.compare import main

sys.exit(main())
