from nsnet.cli import run

run()
