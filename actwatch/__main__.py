from actwatch.cli.main import main

if __name__ == "__main__":  # not when a compute process (spawn) imports it
    main()
