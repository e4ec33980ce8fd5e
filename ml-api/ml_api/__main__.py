import sys

from ml_api.cli import main

sys.exit(main())
