from actwatch.cli.main import main

main()
