from poisonlab.cli import main
import sys
sys.exit(main())
