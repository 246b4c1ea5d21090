"""Run all of ai_router in the foreground (``make run`` calls this): see ``shared.launcher``."""

from shared.launcher import main

if __name__ == "__main__":
    main()
