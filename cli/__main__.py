from cosnet_index.cli import main

main()
