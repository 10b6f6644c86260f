from handnet.cli import main

main()
