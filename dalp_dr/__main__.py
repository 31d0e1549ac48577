import sys

from dalp_dr.cli import main

sys.exit(main())
