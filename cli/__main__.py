from cosnet_index.cli import main

if __name__ == "__main__":  # spawned processes (Dask workers of index --workers) re-import it
    main()
