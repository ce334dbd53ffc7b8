"""The book itself: the chapter context a notebook gets from its parameter check, tables and figures, and the
pipeline that executes the chapters and renders HTML and PDF."""
