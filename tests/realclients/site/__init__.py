"""The real-client app: a Wagtail blog, and articles served by DRF and the Django admin."""
