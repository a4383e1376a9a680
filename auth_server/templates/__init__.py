"""HTML templates and the stylesheet (data files; a package so they ship with it)."""
