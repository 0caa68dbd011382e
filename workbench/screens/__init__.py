"""One screen per file: catalog, lesson, lab, help."""
