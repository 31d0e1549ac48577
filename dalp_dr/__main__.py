import sys

from dalp_dr.commands import main

sys.exit(main())
