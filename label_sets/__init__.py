"""Built-in class lists (data only). Installed as ``vidprompt.label_sets``; see SOURCES.md."""
