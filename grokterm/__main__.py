import sys

from grokterm.cli import main

sys.exit(main())
