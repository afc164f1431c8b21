"""callreview's command line. The library is pipeline/, the Prefect layer flows/."""
