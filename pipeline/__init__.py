"""callreview: recorded-call review for customer-service QA (see README.md)."""
