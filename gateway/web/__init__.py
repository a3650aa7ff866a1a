"""The web console and the one-click pages (a GET shows a confirmation, a POST acts)."""
