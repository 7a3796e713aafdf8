"""`python -m appliance` is the `meeshy-appliance` command."""

from appliance.cli import main

if __name__ == "__main__":
    main()
