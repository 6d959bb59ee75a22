"""The loopback Bybit v5 exchange: the account's books (books.py) and the server that serves them."""
