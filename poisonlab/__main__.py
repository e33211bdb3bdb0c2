import sys

from poisonlab.cli import main

sys.exit(main())
