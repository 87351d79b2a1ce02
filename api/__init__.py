"""GigaTwin's composition root: the command line now, settings and the FastAPI app with later issues."""
