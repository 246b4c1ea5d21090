"""``python -m bot``: the bot listener process."""

from bot.listener import main

if __name__ == "__main__":
    main()
