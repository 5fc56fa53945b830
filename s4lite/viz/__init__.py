"""Code shared by two or more chapters: reading artifacts, errors, tables, timers."""
