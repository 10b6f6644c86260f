from simpleconvnet.cli import main

main()
