"""Run all of ai_router in the foreground (``make run`` calls this): see ``supervisor``."""

from supervisor import main

if __name__ == "__main__":
    main()
