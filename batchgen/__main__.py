from batchgen.cli import run

run()
