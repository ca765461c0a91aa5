"""derive serve: a web page for students and teachers, and a JSON API (Starlette, uvicorn, SQLite)."""
